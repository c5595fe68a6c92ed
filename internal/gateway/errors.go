package gateway

import (
	"encoding/json"
	"net/http"
)

// OpenAI's error types. OpenAI answers a refused key (401) and an
// unknown id (404) with invalid_request_error too, the status telling
// them apart (the SDKs pick their error class by status); a refused key
// has the code invalid_api_key.
const (
	errInvalid  = "invalid_request_error"
	errAuth     = "invalid_request_error"
	errNotFound = "invalid_request_error"
	errServer   = "server_error"
	errTooLarge = "invalid_request_error"

	codeInvalidKey = "invalid_api_key"
)

// apiError is OpenAI's error envelope.
type apiError struct {
	Error apiErrorBody `json:"error"`
}

type apiErrorBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// writeError answers with OpenAI's error envelope; param names the field
// at fault ("" for none).
func writeError(w http.ResponseWriter, status int, typ, param, msg string) {
	body := apiErrorBody{Message: msg, Type: typ}
	if param != "" {
		body.Param = &param
	}
	writeJSON(w, status, apiError{Error: body})
}

// writeCodedError is writeError with OpenAI's code field.
func writeCodedError(w http.ResponseWriter, status int, typ, param, code, msg string) {
	body := apiErrorBody{Message: msg, Type: typ, Code: &code}
	if param != "" {
		body.Param = &param
	}
	writeJSON(w, status, apiError{Error: body})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client went away: nothing to do
}
