package httpclient

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
)

// Object types of OpenAI stream chunks the reassembler understands.
const (
	objectChatChunk      = "chat.completion.chunk"
	objectChatCompletion = "chat.completion"
	objectTextCompletion = "text_completion"
)

var jsonNull = json.RawMessage("null")

// reassembler folds the events of an OpenAI-style stream into the JSON body
// the same call without "stream" would have returned: chat completions
// (choices[].delta.role/content/refusal/tool_calls, finish_reason, logprobs,
// usage) and completions (choices[].text). Streams of any other shape come
// back as their data payloads joined with "\n", "[DONE]" dropped.
type reassembler struct {
	raw     [][]byte
	known   bool // every chunk so far parsed as a completion chunk
	started bool
	done    bool // "[DONE]" arrived

	id, object, model string
	created           int64
	fingerprint       *string
	serviceTier       *string
	usage             json.RawMessage
	choices           map[int]*choiceAcc
}

type choiceAcc struct {
	role         string
	content      strings.Builder
	contentSeen  bool
	refusal      strings.Builder
	refusalSeen  bool
	text         strings.Builder
	tools        map[int]*toolAcc
	finishReason json.RawMessage
	logprobs     map[string][]json.RawMessage
	logprobsSeen bool
}

type toolAcc struct {
	id, typ, name string
	args          strings.Builder
}

// streamChunk is one chunk of either stream kind.
type streamChunk struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	SystemFingerprint *string         `json:"system_fingerprint"`
	ServiceTier       *string         `json:"service_tier"`
	Usage             json.RawMessage `json:"usage"`
	Choices           []struct {
		Index        int             `json:"index"`
		Text         *string         `json:"text"`
		FinishReason json.RawMessage `json:"finish_reason"`
		Logprobs     json.RawMessage `json:"logprobs"`
		Delta        *struct {
			Role      string  `json:"role"`
			Content   *string `json:"content"`
			Refusal   *string `json:"refusal"`
			ToolCalls []struct {
				Index    int    `json:"index"`
				ID       string `json:"id"`
				Type     string `json:"type"`
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"delta"`
	} `json:"choices"`
}

func newReassembler() *reassembler {
	return &reassembler{known: true, choices: map[int]*choiceAcc{}}
}

// add folds one event's data in. "[DONE]" is dropped.
func (a *reassembler) add(data []byte) {
	if string(bytes.TrimSpace(data)) == "[DONE]" {
		a.done = true
		return
	}
	a.raw = append(a.raw, data)
	if !a.known {
		return
	}
	var c streamChunk
	if err := json.Unmarshal(data, &c); err != nil || (c.Object != objectChatChunk && c.Object != objectTextCompletion) {
		a.known = false
		return
	}
	if !a.started {
		a.started = true
		a.id, a.object, a.model, a.created = c.ID, c.Object, c.Model, c.Created
	}
	if c.SystemFingerprint != nil {
		a.fingerprint = c.SystemFingerprint
	}
	if c.ServiceTier != nil {
		a.serviceTier = c.ServiceTier
	}
	if len(c.Usage) > 0 && !bytes.Equal(c.Usage, jsonNull) {
		a.usage = c.Usage
	}
	for _, ch := range c.Choices {
		acc := a.choices[ch.Index]
		if acc == nil {
			acc = &choiceAcc{finishReason: jsonNull, tools: map[int]*toolAcc{}}
			a.choices[ch.Index] = acc
		}
		if len(ch.FinishReason) > 0 && !bytes.Equal(ch.FinishReason, jsonNull) {
			acc.finishReason = ch.FinishReason
		}
		acc.addLogprobs(ch.Logprobs)
		if ch.Text != nil {
			acc.text.WriteString(*ch.Text)
		}
		d := ch.Delta
		if d == nil {
			continue
		}
		if d.Role != "" {
			acc.role = d.Role
		}
		if d.Content != nil {
			acc.content.WriteString(*d.Content)
			acc.contentSeen = true
		}
		if d.Refusal != nil {
			acc.refusal.WriteString(*d.Refusal)
			acc.refusalSeen = true
		}
		for _, tc := range d.ToolCalls {
			t := acc.tools[tc.Index]
			if t == nil {
				t = &toolAcc{}
				acc.tools[tc.Index] = t
			}
			if tc.ID != "" {
				t.id = tc.ID
			}
			if tc.Type != "" {
				t.typ = tc.Type
			}
			t.name += tc.Function.Name
			t.args.WriteString(tc.Function.Arguments)
		}
	}
}

// finished reports whether the stream so far is a whole answer without
// "[DONE]": a completion stream whose every choice has a finish_reason, or
// a stream of another shape (which has no end marker salvo can check). A
// stream without any event is not finished.
func (a *reassembler) finished() bool {
	if len(a.raw) == 0 {
		return false
	}
	if !a.known {
		return true
	}
	if len(a.choices) == 0 {
		return false
	}
	for _, acc := range a.choices {
		if bytes.Equal(acc.finishReason, jsonNull) {
			return false
		}
	}
	return true
}

// addLogprobs concatenates the array fields of logprobs objects
// (chat: content/refusal; completions: tokens/token_logprobs/…).
func (acc *choiceAcc) addLogprobs(raw json.RawMessage) {
	if len(raw) == 0 || bytes.Equal(raw, jsonNull) {
		return
	}
	var m map[string][]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return
	}
	if acc.logprobs == nil {
		acc.logprobs = map[string][]json.RawMessage{}
	}
	acc.logprobsSeen = true
	for k, v := range m {
		acc.logprobs[k] = append(acc.logprobs[k], v...)
	}
}

func (acc *choiceAcc) logprobsJSON() json.RawMessage {
	if !acc.logprobsSeen {
		return jsonNull
	}
	b, err := json.Marshal(acc.logprobs)
	if err != nil {
		return jsonNull
	}
	return b
}

type chatCompletion struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	Choices           []chatChoice    `json:"choices"`
	Usage             json.RawMessage `json:"usage,omitempty"`
	SystemFingerprint *string         `json:"system_fingerprint,omitempty"`
	ServiceTier       *string         `json:"service_tier,omitempty"`
}

type chatChoice struct {
	Index        int             `json:"index"`
	Message      chatMessage     `json:"message"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason json.RawMessage `json:"finish_reason"`
}

type chatMessage struct {
	Role      string     `json:"role"`
	Content   *string    `json:"content"`
	Refusal   *string    `json:"refusal,omitempty"`
	ToolCalls []toolCall `json:"tool_calls,omitempty"`
}

type toolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function toolFunction `json:"function"`
}

type toolFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

type textCompletion struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	Choices           []textChoice    `json:"choices"`
	Usage             json.RawMessage `json:"usage,omitempty"`
	SystemFingerprint *string         `json:"system_fingerprint,omitempty"`
}

type textChoice struct {
	Text         string          `json:"text"`
	Index        int             `json:"index"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason json.RawMessage `json:"finish_reason"`
}

// result returns the reassembled body.
func (a *reassembler) result() []byte {
	if !a.known || !a.started {
		return bytes.Join(a.raw, []byte("\n"))
	}
	idx := make([]int, 0, len(a.choices))
	for i := range a.choices {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	var (
		out any
	)
	if a.object == objectTextCompletion {
		tc := textCompletion{ID: a.id, Object: objectTextCompletion, Created: a.created, Model: a.model,
			Choices: make([]textChoice, 0, len(idx)), Usage: a.usage, SystemFingerprint: a.fingerprint}
		for _, i := range idx {
			acc := a.choices[i]
			tc.Choices = append(tc.Choices, textChoice{Text: acc.text.String(), Index: i,
				Logprobs: acc.logprobsJSON(), FinishReason: acc.finishReason})
		}
		out = tc
	} else {
		cc := chatCompletion{ID: a.id, Object: objectChatCompletion, Created: a.created, Model: a.model,
			Choices: make([]chatChoice, 0, len(idx)), Usage: a.usage, SystemFingerprint: a.fingerprint,
			ServiceTier: a.serviceTier}
		for _, i := range idx {
			cc.Choices = append(cc.Choices, a.choices[i].chatChoice(i))
		}
		out = cc
	}
	b, err := json.Marshal(out)
	if err != nil {
		return bytes.Join(a.raw, []byte("\n"))
	}
	return b
}

func (acc *choiceAcc) chatChoice(i int) chatChoice {
	msg := chatMessage{Role: acc.role}
	if msg.Role == "" {
		msg.Role = "assistant"
	}
	if acc.contentSeen || len(acc.tools) == 0 {
		s := acc.content.String()
		msg.Content = &s
	}
	if acc.refusalSeen {
		s := acc.refusal.String()
		msg.Refusal = &s
	}
	if len(acc.tools) > 0 {
		ti := make([]int, 0, len(acc.tools))
		for k := range acc.tools {
			ti = append(ti, k)
		}
		sort.Ints(ti)
		for _, k := range ti {
			t := acc.tools[k]
			typ := t.typ
			if typ == "" {
				typ = "function"
			}
			msg.ToolCalls = append(msg.ToolCalls, toolCall{ID: t.id, Type: typ,
				Function: toolFunction{Name: t.name, Arguments: t.args.String()}})
		}
	}
	return chatChoice{Index: i, Message: msg, Logprobs: acc.logprobsJSON(), FinishReason: acc.finishReason}
}
