package lifecycle_test

import (
	"fmt"
	"time"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// A model name becomes one NATS subject token; the batchless token "_" can
// never be the encoding of a name.
func ExampleEncodeToken() {
	for _, model := range []string{"gpt-4o", "meta-llama/Llama-3.1-8B", "qwen2.5:7b"} {
		tok, _ := lifecycle.EncodeToken(model)
		back, _ := lifecycle.DecodeToken(tok)
		fmt.Printf("%s -> %s -> %s\n", model, tok, back)
	}
	fmt.Println("subject:", "salvo.req."+lifecycle.MustEncodeToken("gpt-4o")+"."+lifecycle.BatchToken(""))
	// Output:
	// gpt-4o -> gpt-4o -> gpt-4o
	// meta-llama/Llama-3.1-8B -> meta-llama_2FLlama-3_2E1-8B -> meta-llama/Llama-3.1-8B
	// qwen2.5:7b -> qwen2_2E5_3A7b -> qwen2.5:7b
	// subject: salvo.req.gpt-4o._
}

// The worker classifies each upstream answer and asks the policy whether and
// when to try again. Passing a rnd of 0.5 removes the jitter.
func ExampleRetryPolicy_Decide() {
	policy := lifecycle.RetryPolicy{StopBeforeDeadline: 5 * time.Minute}.WithDefaults()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	expires := now.Add(10 * time.Minute)
	noJitter := func() float64 { return 0.5 }

	for attempt, status := range []int{503, 429, 400} {
		failure := policy.ClassifyStatus(status)
		d, _ := policy.Decide(lifecycle.RetryInput{
			Attempt: attempt, Failure: failure, Now: now, ExpiresAt: expires,
		}, noJitter)
		fmt.Printf("attempt %d: %d %s -> retry=%t delay=%s denied=%q\n",
			attempt, status, failure.Code, d.Retry, d.Delay, d.Denied)
	}

	// Retry-After overrides the backoff, but never past expires_at − stop_before_deadline.
	ra, _ := lifecycle.ParseRetryAfter("600", now)
	d, _ := policy.Decide(lifecycle.RetryInput{
		Failure: policy.ClassifyStatus(429), Now: now, ExpiresAt: expires, RetryAfter: ra,
	}, noJitter)
	fmt.Printf("Retry-After 600: retry=%t denied=%q\n", d.Retry, d.Denied)
	// Output:
	// attempt 0: 503 retriable_status -> retry=true delay=1s denied=""
	// attempt 1: 429 retriable_status -> retry=true delay=2s denied=""
	// attempt 2: 400 non_retriable_status -> retry=false delay=0s denied="not_retriable"
	// Retry-After 600: retry=false denied="deadline"
}
