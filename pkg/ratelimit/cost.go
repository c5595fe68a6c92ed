package ratelimit

import (
	"encoding/json"
)

// BytesPerToken is the input-token heuristic: one token per four bytes of
// the whole request body. Real tokenizers give about four characters of
// English per token; counting the body's JSON syntax, role names and
// options too makes the estimate err on the high side, and the correction
// after the call (Ticket.Done, from the response's usage) gives the
// difference back. It needs no tokenizer download and no JSON parse.
const BytesPerToken = 4

// Cost is a call's estimated (or, after it, actual) token use.
type Cost struct {
	Input, Output int64
}

// Amounts is the cost in every budget: one request, and its tokens.
func (c Cost) Amounts() Amounts {
	return Amounts{Requests: 1, Tokens: c.Input + c.Output, InputTokens: c.Input, OutputTokens: c.Output}
}

// outputFields are the body fields that bound a call's output.
type outputFields struct {
	MaxTokens           int64 `json:"max_tokens"`
	MaxCompletionTokens int64 `json:"max_completion_tokens"`
	MaxOutputTokens     int64 `json:"max_output_tokens"`
	N                   int64 `json:"n"`
}

// Estimate is the cost a call is charged before it is made: input tokens
// by BytesPerToken over the body, output tokens from max_completion_tokens,
// max_tokens or max_output_tokens (times n choices), else defaultOutput.
func Estimate(body []byte, defaultOutput int64) Cost {
	c := Cost{Input: int64((len(body) + BytesPerToken - 1) / BytesPerToken)}
	var f outputFields
	_ = json.Unmarshal(body, &f) // a body that is not JSON gets the default
	out := defaultOutput
	for _, v := range []int64{f.MaxCompletionTokens, f.MaxTokens, f.MaxOutputTokens} {
		if v > 0 {
			out = v
			break
		}
	}
	if f.N > 1 {
		out *= f.N
	}
	c.Output = out
	return c
}

// usageBody is the usage object of the OpenAI and Anthropic answers.
type usageBody struct {
	Usage *struct {
		PromptTokens     *int64 `json:"prompt_tokens"`
		CompletionTokens *int64 `json:"completion_tokens"`
		InputTokens      *int64 `json:"input_tokens"`
		OutputTokens     *int64 `json:"output_tokens"`
	} `json:"usage"`
}

// ParseUsage reads a response body's usage: prompt_tokens and
// completion_tokens (OpenAI; completion 0 for embeddings), or input_tokens
// and output_tokens (Anthropic). False when the body has no usage.
func ParseUsage(body []byte) (Cost, bool) {
	var u usageBody
	if json.Unmarshal(body, &u) != nil || u.Usage == nil {
		return Cost{}, false
	}
	in, out := u.Usage.PromptTokens, u.Usage.CompletionTokens
	if in == nil {
		in, out = u.Usage.InputTokens, u.Usage.OutputTokens
	}
	if in == nil {
		return Cost{}, false
	}
	c := Cost{Input: *in}
	if out != nil {
		c.Output = *out
	}
	return c, true
}
