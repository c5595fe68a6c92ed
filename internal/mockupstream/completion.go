package mockupstream

import (
	"encoding/json"
	"hash/fnv"
	"strings"
)

// completion generates the deterministic answer to one call; the streamed
// and the plain form carry the same content.
type completion struct {
	id          string
	model       string
	created     int64
	words       int
	promptBytes int
}

const fingerprint = "fp_mock"

var vocabulary = strings.Fields("the quick brown fox jumps over a lazy dog while salvo keeps every request exactly once")

// reply returns the answer's words.
func (c completion) reply() []string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(c.id))
	seed := int(h.Sum32() % uint32(len(vocabulary)))
	out := []string{"Mock", "reply", "to", c.id + ":"}
	for i := 0; len(out) < c.words; i++ {
		out = append(out, vocabulary[(seed+i)%len(vocabulary)])
	}
	return out[:max(c.words, 1)]
}

func (c completion) usage() map[string]int {
	p := max(c.promptBytes/4, 1)
	return map[string]int{"prompt_tokens": p, "completion_tokens": c.words, "total_tokens": p + c.words}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps of plain values are marshaled here
	}
	return b
}

func (c completion) chat() []byte {
	return mustJSON(map[string]any{
		"id": "chatcmpl-" + c.id, "object": "chat.completion", "created": c.created, "model": c.model,
		"choices": []any{map[string]any{
			"index":         0,
			"message":       map[string]any{"role": "assistant", "content": strings.Join(c.reply(), " ")},
			"logprobs":      nil,
			"finish_reason": "stop",
		}},
		"usage": c.usage(), "system_fingerprint": fingerprint,
	})
}

func (c completion) text() []byte {
	return mustJSON(map[string]any{
		"id": "cmpl-" + c.id, "object": "text_completion", "created": c.created, "model": c.model,
		"choices": []any{map[string]any{
			"text": strings.Join(c.reply(), " "), "index": 0, "logprobs": nil, "finish_reason": "stop",
		}},
		"usage": c.usage(), "system_fingerprint": fingerprint,
	})
}

// chunks is the SSE form: for chat a role chunk, one chunk per word, a
// finish chunk and (with usage) a usage chunk; for completions one chunk
// per word, a finish chunk and the usage chunk.
func (c completion) chunks(chat, withUsage bool) [][]byte {
	words := c.reply()
	id, object := "cmpl-"+c.id, "text_completion"
	if chat {
		id, object = "chatcmpl-"+c.id, "chat.completion.chunk"
	}
	chunk := func(choices []any) []byte {
		return mustJSON(map[string]any{"id": id, "object": object, "created": c.created, "model": c.model,
			"system_fingerprint": fingerprint, "choices": choices})
	}
	choice := func(delta string, finish any) []any {
		if chat {
			d := map[string]any{}
			if delta != "" {
				d["content"] = delta
			}
			return []any{map[string]any{"index": 0, "delta": d, "logprobs": nil, "finish_reason": finish}}
		}
		return []any{map[string]any{"text": delta, "index": 0, "logprobs": nil, "finish_reason": finish}}
	}
	var out [][]byte
	if chat {
		out = append(out, chunk([]any{map[string]any{"index": 0,
			"delta": map[string]any{"role": "assistant", "content": ""}, "logprobs": nil, "finish_reason": nil}}))
	}
	for i, w := range words {
		if i < len(words)-1 {
			w += " "
		}
		out = append(out, chunk(choice(w, nil)))
	}
	out = append(out, chunk(choice("", "stop")))
	if withUsage {
		u := mustJSON(map[string]any{"id": id, "object": object, "created": c.created, "model": c.model,
			"system_fingerprint": fingerprint, "choices": []any{}, "usage": c.usage()})
		out = append(out, u)
	}
	return out
}

// embeddings answers one 8-dimensional vector per input (a string or a
// list), derived from the input so it is stable.
func (c completion) embeddings(input json.RawMessage) []byte {
	var inputs []json.RawMessage
	if err := json.Unmarshal(input, &inputs); err != nil {
		inputs = []json.RawMessage{input}
	}
	data := make([]any, 0, len(inputs))
	for i, in := range inputs {
		h := fnv.New64a()
		_, _ = h.Write(in)
		v := h.Sum64()
		vec := make([]float64, 8)
		for d := range vec {
			vec[d] = float64(int64((v>>(8*d))&0xff)-128) / 128
		}
		data = append(data, map[string]any{"object": "embedding", "index": i, "embedding": vec})
	}
	p := max(c.promptBytes/4, 1)
	return mustJSON(map[string]any{"object": "list", "data": data, "model": c.model,
		"usage": map[string]int{"prompt_tokens": p, "total_tokens": p}})
}
