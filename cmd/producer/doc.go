// Command producer is salvo's client CLI: it submits OpenAI batch input
// files, follows batches as they run, cancels them, lists them and writes
// their results, talking to salvo through NATS only (the batch API every
// worker serves, docs/PROTOCOL.md section 11). It never touches Redis.
//
//	producer submit [--wait] [--output out.jsonl] [--errors err.jsonl] FILE.jsonl
//	producer watch BATCH
//	producer status BATCH
//	producer cancel BATCH | producer cancel --request ID --batch BATCH
//	producer list [--status S] [--metadata k=v]... [--limit N] [--after ID]
//	producer results BATCH [--output FILE] [--errors FILE] [--input FILE.jsonl]
//	producer validate FILE.jsonl
//	producer completion bash|zsh|fish|powershell
//
// Every command takes --help, and --json for output meant for scripts.
//
// # Connection
//
// The flags and environment variables are the nats CLI's: -s/--server
// (NATS_URL, default nats://127.0.0.1:4222), --creds (NATS_CREDS), --nkey
// (NATS_NKEY), --user and --password (NATS_USER, NATS_PASSWORD; a --user
// without a password is sent as a token), --tlscert, --tlskey and --tlsca
// (NATS_CERT, NATS_KEY, NATS_CA). A flag wins over its variable. --prefix (SALVO_PREFIX, default salvo) names the deployment.
// The connection is tried once, within --connect-timeout (default 2s):
// an unreachable server is an error at once, never a wait. A refused one
// (exit 3) names what the server refused and the flag to check, e.g.
// "nats: Authorization Violation (check --creds (NATS_CREDS))", never a
// password or token (internal/natsconn).
//
// # Exit codes
//
//	0    success; for watch and submit --wait, the batch completed
//	1    the batch failed, expired or was cancelled; the input file has
//	     invalid lines; the batch API refused the call (not found, conflict)
//	2    usage: unknown command or flag, missing or bad argument
//	3    unreachable: NATS cannot be reached, or no batch service answers
//	     on the prefix's subjects
//	130  interrupted (SIGINT or SIGTERM) before the batch ended; the batch
//	     keeps running
package main
