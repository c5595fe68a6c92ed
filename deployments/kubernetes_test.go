package deployments_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/yannh/kubeconform/pkg/resource"
	"github.com/yannh/kubeconform/pkg/validator"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/salvo-run/salvo/internal/config"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// kubernetesVersion names the vendored schema directory
// (schemas/v<version>-standalone-strict, written by schemas/gen).
const kubernetesVersion = "1.34.4"

// newValidator is kubeconform reading only the vendored schemas: built-in
// kinds in its standalone-strict layout, custom resources as
// <group>/<kind>_<version>.json. A kind without a schema is an error, not
// skipped, and fields a schema does not name are refused (strict).
func newValidator(t *testing.T) validator.Validator {
	t.Helper()
	dir, err := filepath.Abs("schemas")
	require.NoError(t, err)
	v, err := validator.New([]string{
		dir + "/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json",
		dir + "/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json",
	}, validator.Opts{KubernetesVersion: kubernetesVersion, Strict: true})
	require.NoError(t, err)
	return v
}

// krustyMu serializes krusty runs: kyaml loads its built-in OpenAPI
// schema into package globals on first use without a lock, a data race
// when parallel tests render at once.
var krustyMu sync.Mutex

// build renders a kustomization as `kustomize build` does.
func build(t *testing.T, dir string) resmap.ResMap {
	t.Helper()
	krustyMu.Lock()
	defer krustyMu.Unlock()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	require.NoError(t, err, dir)
	return m
}

// validate checks every object against its schema and returns the kinds.
func validate(t *testing.T, v validator.Validator, name string, m resmap.ResMap) []string {
	t.Helper()
	var kinds []string
	for _, r := range m.Resources() {
		b, err := r.AsYAML()
		require.NoError(t, err)
		res := v.ValidateResource(resource.Resource{Path: name, Bytes: b})
		require.Equal(t, validator.Valid, res.Status, "%s: %s %s: %v %v", name, r.GetKind(), r.GetName(), res.Err, res.ValidationErrors)
		kinds = append(kinds, r.GetKind())
	}
	return kinds
}

func TestKustomizeBuildsValidManifests(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	for dir, want := range map[string][]string{
		"kubernetes/base":                 {"ServiceAccount", "Deployment", "PodDisruptionBudget", "Service", "ConfigMap"},
		"kubernetes/overlays/example":     {"ServiceAccount", "Deployment", "PodDisruptionBudget", "Service", "ConfigMap", "Secret", "ScaledObject"},
		"kubernetes/overlays/example-hpa": {"ServiceAccount", "Deployment", "PodDisruptionBudget", "Service", "ConfigMap", "Secret", "HorizontalPodAutoscaler"},
	} {
		kinds := validate(t, v, dir, build(t, dir))
		require.ElementsMatch(t, want, dedupe(kinds), dir)
	}
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// The validator CI relies on refuses what the API server would: a field
// no schema names, a value of the wrong type, a missing required field,
// in a built-in kind and in KEDA's custom resource.
func TestValidatorRefusesBrokenManifests(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	deployment := `apiVersion: apps/v1
kind: Deployment
metadata: {name: w}
spec:
  replicas: %s
  selector: {matchLabels: {app: w}}
  template:
    metadata: {labels: {app: w}}
    spec:
      containers:
        - %s
`
	for name, tc := range map[string]struct {
		doc     string
		status  validator.Status
		mention string
	}{
		"unknown field":         {fmtDoc(deployment, "3", "{name: w, image: x, imagePullPolicyy: Always}"), validator.Invalid, "'imagePullPolicyy' not allowed"},
		"wrong type":            {fmtDoc(deployment, `"three"`, "{name: w, image: x}"), validator.Invalid, "/spec/replicas"},
		"missing required name": {fmtDoc(deployment, "3", "{image: x}"), validator.Invalid, "missing property 'name'"},
		"probe port neither name nor number": {fmtDoc(deployment, "3", "{name: w, image: x, readinessProbe: {httpGet: {path: /readyz, port: [8081]}}}"),
			validator.Invalid, "/readinessProbe/httpGet/port"},
		"unknown ScaledObject field": {`apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: w}
spec:
  scaleTargetRef: {name: w}
  triggers: [{type: nats-jetstream, metadata: {stream: S}}]
  maxReplicas: 3
`, validator.Invalid, "'maxReplicas' not allowed"},
		"kind without a vendored schema": {"apiVersion: batch/v1\nkind: Job\nmetadata: {name: w}\n", validator.Error, "could not find schema for Job"},
	} {
		res := v.ValidateResource(resource.Resource{Path: name, Bytes: []byte(tc.doc)})
		require.Equal(t, tc.status, res.Status, "%s: %v", name, res.Err)
		require.ErrorContains(t, res.Err, tc.mention, name)
	}
	ok := fmtDoc(deployment, "3", "{name: w, image: x, readinessProbe: {httpGet: {path: /readyz, port: http}}}")
	res := v.ValidateResource(resource.Resource{Path: "valid", Bytes: []byte(ok)})
	require.Equal(t, validator.Valid, res.Status, "%v %v", res.Err, res.ValidationErrors)
}

func fmtDoc(doc string, args ...string) string {
	for _, a := range args {
		doc = strings.Replace(doc, "%s", a, 1)
	}
	return doc
}

// object is a rendered resource as plain data.
func object(t *testing.T, m resmap.ResMap, kind string) map[string]any {
	t.Helper()
	for _, r := range m.Resources() {
		if r.GetKind() == kind {
			o, err := r.Map()
			require.NoError(t, err)
			return o
		}
	}
	require.Failf(t, "missing kind", "%s", kind)
	return nil
}

// dig walks maps and lists ("containers", "0", ...).
func dig(t *testing.T, v any, path ...string) any {
	t.Helper()
	for _, p := range path {
		switch n := v.(type) {
		case map[string]any:
			v = n[p]
		case []any:
			i := 0
			for _, c := range p {
				i = i*10 + int(c-'0')
			}
			require.Less(t, i, len(n), p)
			v = n[i]
		default:
			require.Failf(t, "not a container", "%v at %s", v, p)
		}
	}
	return v
}

// The manifests agree with the worker they run: the ConfigMap's worker.yaml
// loads with the worker's own config loader (unknown keys are errors), the
// probes ask the port the worker listens on, the pod outlives the drain,
// every routed model has a KEDA trigger on its consumer, and the NATS and
// Redis values match what the worker expects of them.
func TestManifestsMatchTheWorkerSettings(t *testing.T) {
	t.Parallel()
	m := build(t, "kubernetes/overlays/example")

	cm := object(t, m, "ConfigMap")
	file := filepath.Join(t.TempDir(), "worker.yaml")
	require.NoError(t, os.WriteFile(file, []byte(dig(t, cm, "data", "worker.yaml").(string)), 0o600))

	dep := object(t, m, "Deployment")
	pod := dig(t, dep, "spec", "template", "spec").(map[string]any)
	ctr := dig(t, pod, "containers", "0").(map[string]any)
	env := map[string]string{"OPENAI_API_KEY": "sk-test", "SALVO_REDIS_PASSWORD": "x", "SALVO_REDIS_SENTINEL_PASSWORD": "x", "SALVO_NATS_PASSWORD": "y"}
	for _, e := range dig(t, ctr, "env").([]any) {
		e := e.(map[string]any)
		if val, ok := e["value"].(string); ok {
			env[e["name"].(string)] = val
		}
	}
	args := dig(t, ctr, "args").([]any)
	require.Equal(t, []any{"-config", "/etc/salvo/worker.yaml"}, args)
	s, err := config.Load([]string{"-config", file}, func(k string) string { return env[k] })
	require.NoError(t, err)

	// The secrets reach the worker through its own settings: every SALVO_
	// variable the Deployment sets is a key's variable.
	known := map[string]bool{}
	for _, k := range config.Keys() {
		known[config.EnvName(k)] = true
	}
	for _, e := range dig(t, ctr, "env").([]any) {
		name := e.(map[string]any)["name"].(string)
		if strings.HasPrefix(name, "SALVO_") {
			require.True(t, known[name], "the Deployment sets %s, which no setting reads", name)
		}
	}
	require.Equal(t, "salvo-worker", s.NATS.User)
	require.Equal(t, "x", s.Redis.Password.Reveal())
	// bitnami's auth.sentinel makes the Sentinels ask for the password:
	// the worker must send it to them too, from the same Secret key.
	require.Equal(t, "x", s.Redis.SentinelPassword.Reveal())
	require.Equal(t, secretRef(t, ctr, "SALVO_REDIS_PASSWORD"), secretRef(t, ctr, "SALVO_REDIS_SENTINEL_PASSWORD"))

	// Probes: the listener's port on every interface.
	require.Equal(t, ":8081", s.HTTPAddr)
	require.Equal(t, "http", dig(t, ctr, "ports", "0", "name"))
	require.EqualValues(t, 8081, dig(t, ctr, "ports", "0", "containerPort"))
	require.Equal(t, "/healthz", dig(t, ctr, "livenessProbe", "httpGet", "path"))
	require.Equal(t, "/readyz", dig(t, ctr, "readinessProbe", "httpGet", "path"))
	require.Equal(t, "http", dig(t, ctr, "readinessProbe", "httpGet", "port"))

	// The kubelet's SIGKILL comes after the drain, with room to release
	// leases and nak.
	grace := time.Duration(toInt(t, dig(t, pod, "terminationGracePeriodSeconds"))) * time.Second
	require.Greater(t, grace, s.WorkerConfig().ShutdownGrace+10*time.Second)

	// KEDA: one trigger per routed model, on its consumer of the requests
	// stream, at the per-pod concurrency.
	so := object(t, m, "ScaledObject")
	require.Equal(t, "salvo-worker", dig(t, so, "spec", "scaleTargetRef", "name"))
	stream := strings.ToUpper(s.Prefix) + "_REQUESTS"
	var consumers []string
	for _, tr := range dig(t, so, "spec", "triggers").([]any) {
		md := dig(t, tr, "metadata").(map[string]any)
		require.Equal(t, "nats-jetstream", dig(t, tr, "type"))
		require.Equal(t, stream, md["stream"])
		require.Equal(t, "64", md["lagThreshold"])
		require.Equal(t, s.WorkerConfig().Concurrency.Default, 64)
		consumers = append(consumers, md["consumer"].(string))
	}
	for model := range s.Upstream.Routes {
		tok, err := lifecycle.EncodeToken(model)
		require.NoError(t, err)
		require.Contains(t, consumers, "model-"+tok, "no trigger for routed model %s", model)
	}
	for _, c := range consumers {
		_, err := lifecycle.DecodeToken(strings.TrimPrefix(c, "model-"))
		require.NoError(t, err, "%s is not a model consumer name", c)
	}

	// NATS: R3 streams on a 3-node JetStream cluster whose monitoring port
	// KEDA can reach; Redis: the Sentinel master set and password Secret
	// the worker uses.
	nats := readYAML(t, "kubernetes/nats-values.yaml")
	require.Equal(t, s.QueueConfig().Replicas, 3)
	require.EqualValues(t, 3, dig(t, nats, "config", "cluster", "replicas"))
	require.Equal(t, true, dig(t, nats, "config", "cluster", "enabled"))
	require.Equal(t, true, dig(t, nats, "config", "jetstream", "enabled"))
	require.Equal(t, true, dig(t, nats, "service", "ports", "monitor", "enabled"))
	// The worker's NATS user is a user of the account the streams and the
	// KEDA triggers name, and its password is the Secret key the NATS pods
	// read.
	users := dig(t, nats, "config", "merge", "accounts", "SALVO", "users").([]any)
	require.Contains(t, []any{dig(t, users, "0", "user"), dig(t, users, "1", "user")}, s.NATS.User)
	require.Equal(t, "<< $SALVO_WORKER_PASSWORD >>", dig(t, users, "0", "password"))
	require.Equal(t, secretRef(t, ctr, "SALVO_NATS_PASSWORD"), fmt.Sprintf("%v/%v",
		dig(t, nats, "container", "env", "SALVO_WORKER_PASSWORD", "valueFrom", "secretKeyRef", "name"),
		dig(t, nats, "container", "env", "SALVO_WORKER_PASSWORD", "valueFrom", "secretKeyRef", "key")))
	for _, tr := range dig(t, so, "spec", "triggers").([]any) {
		require.Equal(t, "SALVO", dig(t, tr, "metadata", "account"))
	}
	redis := readYAML(t, "kubernetes/redis-values.yaml")
	require.Equal(t, true, dig(t, redis, "sentinel", "enabled"))
	require.Equal(t, s.RedisMaster, dig(t, redis, "sentinel", "masterSet"))
	require.Equal(t, "salvo-redis", dig(t, redis, "auth", "existingSecret"))
	require.Equal(t, "redis-password", dig(t, redis, "auth", "existingSecretPasswordKey"))
	require.Equal(t, []string{"redis:26379"}, s.RedisAddrs)
}

// secretRef is the Secret name and key a container's variable comes from.
func secretRef(t *testing.T, ctr map[string]any, name string) string {
	t.Helper()
	for _, e := range dig(t, ctr, "env").([]any) {
		e := e.(map[string]any)
		if e["name"] == name {
			return fmt.Sprintf("%v/%v", dig(t, e, "valueFrom", "secretKeyRef", "name"), dig(t, e, "valueFrom", "secretKeyRef", "key"))
		}
	}
	require.Failf(t, "no such variable", "%s", name)
	return ""
}

func toInt(t *testing.T, v any) int64 {
	t.Helper()
	switch n := v.(type) {
	case int:
		return int64(n)
	case int64:
		return n
	case float64:
		return int64(n)
	}
	require.Failf(t, "not a number", "%v (%T)", v, v)
	return 0
}

func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, yaml.Unmarshal(b, &out))
	return out
}

// prometheus-adapter's rule reads a gauge the worker serves.
func TestAdapterRuleUsesTheWorkersLagGauge(t *testing.T) {
	t.Parallel()
	v := readYAML(t, "kubernetes/prometheus-adapter-values.yaml")
	rule := dig(t, v, "rules", "external", "0").(map[string]any)
	require.Equal(t, "salvo_queue_backlog", dig(t, rule, "name", "as"))
	series := rule["seriesQuery"].(string)
	name := series[:strings.IndexByte(series, '{')]
	require.Contains(t, served(), name)
	require.Contains(t, rule["metricsQuery"], name)
	hpa := build(t, "kubernetes/overlays/example-hpa")
	require.Equal(t, "salvo_queue_backlog", dig(t, object(t, hpa, "HorizontalPodAutoscaler"), "spec", "metrics", "0", "external", "metric", "name"))
}
