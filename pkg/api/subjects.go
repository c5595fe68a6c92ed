package api

// The API's endpoints: the subject of each is <prefix>.api.<endpoint>.
const (
	EndpointBatchCreate   = "batch.create"
	EndpointBatchSeal     = "batch.seal"
	EndpointBatchGet      = "batch.get"
	EndpointBatchCancel   = "batch.cancel"
	EndpointBatchList     = "batch.list"
	EndpointRequestGet    = "request.get"
	EndpointRequestCancel = "request.cancel"
)

// Endpoints lists every endpoint in the order the service registers them.
var Endpoints = []string{
	EndpointBatchCreate, EndpointBatchSeal, EndpointBatchGet, EndpointBatchCancel,
	EndpointBatchList, EndpointRequestGet, EndpointRequestCancel,
}

// Group is the subject every endpoint of a deployment lives under.
func Group(prefix string) string { return prefix + ".api" }

// Subject is the subject of endpoint (one of Endpoints) in a deployment.
func Subject(prefix, endpoint string) string { return Group(prefix) + "." + endpoint }

// microName is the micro endpoint name of endpoint: micro names may not
// hold dots, so "batch.create" is registered as "batch_create" (on subject
// <prefix>.api.batch.create).
func microName(endpoint string) string {
	b := []byte(endpoint)
	for i, c := range b {
		if c == '.' {
			b[i] = '_'
		}
	}
	return string(b)
}
