#!/usr/bin/env bash
# A whole batch with nothing but the nats CLI (natscli) and NATS credentials:
# create the batch through the batch API, publish its requests as raw JSON,
# follow batch.get until the batch is final, read its results and its events
# from SALVO_RESULTS, and look at the API service itself.
#
#   NATS_URL=nats://127.0.0.1:4222 NATS_USER=salvo-client NATS_PASSWORD=... \
#     docs/examples/nats-cli.sh
#
# The nats CLI reads NATS_URL, NATS_USER, NATS_PASSWORD, NATS_CREDS, ... from
# the environment (or a selected `nats context`). The client user of
# deployments/nats/accounts.conf is enough: it may publish salvo.req.> and
# salvo.api.>, and read SALVO_RESULTS. Install the CLI with
#   go install github.com/nats-io/natscli/nats@latest
#
# Settings (environment): SALVO_PREFIX (salvo), MODEL (a model a worker routes;
# meta-llama/Llama-3.1-8B), N (requests, 3), WINDOW (completion window, 1h),
# WAIT (seconds to wait for the batch to finish, 120).
#
# Nothing here is a fixed date: the batch's expires_at is created_at plus
# WINDOW, computed by the service, and the requests carry no expires_at of
# their own (the batch's applies).
set -euo pipefail

PREFIX=${SALVO_PREFIX:-salvo}
MODEL=${MODEL:-meta-llama/Llama-3.1-8B}
N=${N:-3}
WINDOW=${WINDOW:-1h}
WAIT=${WAIT:-120}
RESULTS_STREAM=$(printf '%s_RESULTS' "$PREFIX" | tr '[:lower:]' '[:upper:]')

for tool in nats jq od; do
  command -v "$tool" >/dev/null || { echo "nats-cli.sh: $tool is not on the PATH" >&2; exit 2; }
done

# token encodes a name as one subject token, as lifecycle.EncodeToken does
# (docs/PROTOCOL.md section 2): A-Z a-z 0-9 and '-' stay, every other byte
# becomes '_' and two upper-case hex digits.
token() {
  printf '%s' "$1" | od -An -v -tx1 | tr -s ' \n' '\n\n' | grep -v '^$' |
    while read -r hex; do
      case $hex in
        2d | 3[0-9] | 4[1-9a-f] | 5[0-9a] | 6[1-9a-f] | 7[0-9a]) printf "\\x$hex" ;;
        *) printf '_%s' "$(printf '%s' "$hex" | tr '[:lower:]' '[:upper:]')" ;;
      esac
    done
}

# api ENDPOINT BODY sends one batch API request and prints the reply body.
# An error reply (a body of only {"error":{"code","message"}}; the headers
# Nats-Service-Error-Code and Nats-Service-Error say the same) is printed on
# stderr and fails the call.
api() {
  local reply
  reply=$(nats req --raw --no-templates "$PREFIX.api.$1" "$2")
  if jq -e 'keys == ["error"]' >/dev/null <<<"$reply"; then
    echo "$1: $(jq -r '.error.code + ": " + .error.message' <<<"$reply")" >&2
    return 1
  fi
  printf '%s\n' "$reply"
}

step() { printf '\n== %s\n' "$*"; }

step "create a batch of $N requests, window $WINDOW"
batch=$(api batch.create "$(jq -nc --arg w "$WINDOW" --argjson n "$N" \
  '{completion_window: $w, endpoint: "/v1/chat/completions", total: $n, metadata: {example: "nats-cli"}}')")
jq -c '{id, status, created_at, expires_at, request_counts, sealed: .salvo.sealed}' <<<"$batch"
BATCH=$(jq -r .id <<<"$batch")

# A create retried with the same id and contents returns the same batch.
api batch.create "$(jq -nc --arg id "$BATCH" --arg w "$WINDOW" --argjson n "$N" \
  '{id: $id, completion_window: $w, endpoint: "/v1/chat/completions", total: $n, metadata: {example: "nats-cli"}}')" |
  jq -c '{id, status, note: "same batch: create is idempotent by id"}'

BATCH_TOKEN=$(token "$BATCH")
MODEL_TOKEN=$(token "$MODEL")
SUBJECT="$PREFIX.req.$MODEL_TOKEN.$BATCH_TOKEN"

step "publish $N requests to $SUBJECT"
for i in $(seq 1 "$N"); do
  id="req-$i"
  body=$(jq -nc --arg id "$id" --arg b "$BATCH" --arg m "$MODEL" --arg q "Say the number $i in words." \
    '{v: 1, id: $id, batch_id: $b, custom_id: ("row-" + ($id | ltrimstr("req-"))), model: $m,
      method: "POST", url: "/v1/chat/completions",
      body: {model: $m, messages: [{role: "user", content: $q}], max_tokens: 32}}')
  # Nats-Msg-Id is <batchtoken>.<id>: the stream drops a repeated publish.
  nats pub --jetstream --quiet --no-templates -H "Nats-Msg-Id:$BATCH_TOKEN.$id" "$SUBJECT" "$body"
  echo "published $id"
done

step "follow $PREFIX.api.batch.get until the batch is final"
deadline=$((SECONDS + WAIT))
last=""
while :; do
  batch=$(api batch.get "$(jq -nc --arg id "$BATCH" '{id: $id}')")
  line=$(jq -c '{status, request_counts, results_published: .salvo.results_published}' <<<"$batch")
  [[ $line != "$last" ]] && echo "$line"
  last=$line
  case $(jq -r .status <<<"$batch") in
    completed | failed | expired | cancelled) break ;;
  esac
  if ((SECONDS >= deadline)); then
    echo "the batch is not final after ${WAIT}s" >&2
    exit 1
  fi
  sleep 0.5
done
jq -c '{status, in_progress_at, finalizing_at, completed_at, failed_at, expired_at, cancelled_at, counts: .salvo.counts}' <<<"$batch"

step "read the results from $RESULTS_STREAM ($PREFIX.res.$BATCH_TOKEN)"
# An ordered consumer from the start of the stream, filtered to the batch;
# `nats stream view $RESULTS_STREAM --subject $PREFIX.res.$BATCH_TOKEN`
# pages through the same messages.
nats sub --raw --stream "$RESULTS_STREAM" --all --count "$(jq .request_counts.total <<<"$batch")" \
  "$PREFIX.res.$BATCH_TOKEN" |
  jq -c '{id, custom_id, state, status_code: .response.status_code, attempts,
          answer: (.response.body.choices[0].message.content // .error.code)}'

step "the batch's events ($PREFIX.evt.batch.$BATCH_TOKEN): created, then one terminal event"
nats sub --raw --stream "$RESULTS_STREAM" --all --count 2 "$PREFIX.evt.batch.$BATCH_TOKEN" |
  jq -c '{type, status: .batch.status, total: .batch.request_counts.total}'

step "one request"
api request.get "$(jq -nc --arg b "$BATCH" '{id: "req-1", batch_id: $b}')" |
  jq -c '{id, batch_id, custom_id, state, attempts, status_code, result_published}'

step "an error reply names the field"
api batch.create '{"metadata": {"a": "b"}, "completion_window": "2x"}' 2>&1 || true

step "the service: nats micro ls / nats micro info salvo"
nats micro ls
nats micro info salvo
