// Command gen writes the JSON schemas deployments/deploy_test.go validates
// the Kubernetes manifests against, so the check runs offline: kubeconform's
// "standalone-strict" layout (every $ref inlined; objects refuse fields their
// schema does not name), for exactly the kinds deployments/kubernetes uses.
//
//	go run ./deployments/schemas/gen
//
// Sources, fetched through the Go module proxy (`go mod download`): the
// OpenAPI v3 documents of Kubernetes (k8s.io/kubernetes, api/openapi-spec/v3)
// and KEDA's CRDs (github.com/kedacore/keda/v2, config/crd/bases). The
// conversion is what openapi2jsonschema does for yannh/kubernetes-json-schema;
// it is written here because that tool is Python and downloads the spec, and
// the few rules below are all these kinds need.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Versions of the sources; deployments/schemas/README.md names them too.
const (
	kubernetesModule = "k8s.io/kubernetes@v1.34.4"
	kubernetesDir    = "v1.34.4-standalone-strict"
	kedaModule       = "github.com/kedacore/keda/v2@v2.21.0"
)

// builtin is a Kubernetes kind: the OpenAPI v3 document holding it, its
// component name, and the file kubeconform looks for.
type builtin struct{ doc, component, file string }

var builtins = []builtin{
	{"api__v1_openapi.json", "io.k8s.api.core.v1.ConfigMap", "configmap-v1.json"},
	{"api__v1_openapi.json", "io.k8s.api.core.v1.Secret", "secret-v1.json"},
	{"api__v1_openapi.json", "io.k8s.api.core.v1.Service", "service-v1.json"},
	{"api__v1_openapi.json", "io.k8s.api.core.v1.ServiceAccount", "serviceaccount-v1.json"},
	{"apis__apps__v1_openapi.json", "io.k8s.api.apps.v1.Deployment", "deployment-apps-v1.json"},
	{"apis__policy__v1_openapi.json", "io.k8s.api.policy.v1.PodDisruptionBudget", "poddisruptionbudget-policy-v1.json"},
	{"apis__autoscaling__v2_openapi.json", "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler", "horizontalpodautoscaler-autoscaling-v2.json"},
}

// crd is a KEDA custom resource: its CRD file and the version served.
type crd struct{ file, version string }

var crds = []crd{{"keda.sh_scaledobjects.yaml", "v1alpha1"}}

func main() {
	out := "deployments/schemas"
	if len(os.Args) > 1 {
		out = os.Args[1]
	}
	if err := run(out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	k8s, err := moduleDir(kubernetesModule)
	if err != nil {
		return err
	}
	keda, err := moduleDir(kedaModule)
	if err != nil {
		return err
	}
	for _, b := range builtins {
		s, err := builtinSchema(filepath.Join(k8s, "api/openapi-spec/v3", b.doc), b.component)
		if err != nil {
			return fmt.Errorf("%s: %w", b.component, err)
		}
		if err := write(filepath.Join(out, kubernetesDir, b.file), s); err != nil {
			return err
		}
	}
	for _, c := range crds {
		group, s, err := crdSchema(filepath.Join(keda, "config/crd/bases", c.file), c.version)
		if err != nil {
			return fmt.Errorf("%s: %w", c.file, err)
		}
		kind := strings.ToLower(s["x-kind"].(string))
		delete(s, "x-kind")
		if err := write(filepath.Join(out, group, kind+"_"+c.version+".json"), s); err != nil {
			return err
		}
	}
	return nil
}

// moduleDir downloads a module through the Go toolchain and returns its
// directory in the module cache.
func moduleDir(mod string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b, err := exec.CommandContext(ctx, "go", "mod", "download", "-json", mod).Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s: %w", mod, err)
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(b, &info); err != nil {
		return "", err
	}
	if info.Error != "" {
		return "", errors.New(info.Error)
	}
	return info.Dir, nil
}

func builtinSchema(path, component string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	root, ok := doc.Components.Schemas[component]
	if !ok {
		return nil, errors.New("no such component")
	}
	c := converter{defs: doc.Components.Schemas}
	s, err := c.schema(root, nil)
	if err != nil {
		return nil, err
	}
	gvks, _ := root["x-kubernetes-group-version-kind"].([]any)
	if len(gvks) != 1 {
		return nil, fmt.Errorf("%d group-version-kinds, want 1", len(gvks))
	}
	gvk := gvks[0].(map[string]any)
	apiVersion := gvk["version"].(string)
	if g := gvk["group"].(string); g != "" {
		apiVersion = g + "/" + apiVersion
	}
	pinTypeMeta(s, apiVersion, gvk["kind"].(string))
	return s, nil
}

func crdSchema(path, version string) (string, map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, err
	}
	var def struct {
		Spec struct {
			Group string `json:"group"`
			Names struct {
				Kind string `json:"kind"`
			} `json:"names"`
			Versions []struct {
				Name   string `json:"name"`
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(b, &def); err != nil {
		return "", nil, err
	}
	for _, v := range def.Spec.Versions {
		if v.Name != version {
			continue
		}
		var c converter
		s, err := c.schema(v.Schema.OpenAPIV3Schema, nil)
		if err != nil {
			return "", nil, err
		}
		pinTypeMeta(s, def.Spec.Group+"/"+version, def.Spec.Names.Kind)
		s["x-kind"] = def.Spec.Names.Kind
		return def.Spec.Group, s, nil
	}
	return "", nil, fmt.Errorf("no version %s", version)
}

// pinTypeMeta makes apiVersion and kind accept only the schema's own.
func pinTypeMeta(s map[string]any, apiVersion, kind string) {
	props, _ := s["properties"].(map[string]any)
	if props == nil {
		return
	}
	props["apiVersion"] = map[string]any{"type": "string", "enum": []any{apiVersion}}
	props["kind"] = map[string]any{"type": "string", "enum": []any{kind}}
}

// converter turns an OpenAPI v3 schema into a standalone strict JSON schema.
type converter struct {
	defs map[string]map[string]any
}

const refPrefix = "#/components/schemas/"

// Kubernetes' two string-or-number types, as manifests write them.
var special = map[string]map[string]any{
	"io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}},
	"io.k8s.apimachinery.pkg.api.resource.Quantity":   {"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}},
}

// schema converts n: $refs inlined (stack holds the names being inlined,
// to refuse a cycle), a lone allOf merged into its parent, int-or-string
// made a oneOf, descriptions and defaults dropped, and objects with
// properties closed (additionalProperties false) unless they keep unknown
// fields on purpose.
func (c converter) schema(n map[string]any, stack []string) (map[string]any, error) {
	if ref, ok := n["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, refPrefix)
		if sp, ok := special[name]; ok {
			return clone(sp), nil
		}
		for _, s := range stack {
			if s == name {
				return nil, fmt.Errorf("cycle through %s", name)
			}
		}
		def, ok := c.defs[name]
		if !ok {
			return nil, fmt.Errorf("unknown $ref %s", ref)
		}
		return c.schema(def, append(stack, name))
	}
	out := map[string]any{}
	for k, v := range n {
		var err error
		switch k {
		case "description", "default", "example":
			continue
		case "properties":
			props := map[string]any{}
			for name, p := range v.(map[string]any) {
				if props[name], err = c.schema(p.(map[string]any), stack); err != nil {
					return nil, fmt.Errorf("%s: %w", name, err)
				}
			}
			out[k] = props
		case "items", "not":
			out[k], err = c.schema(v.(map[string]any), stack)
		case "additionalProperties":
			if m, ok := v.(map[string]any); ok {
				out[k], err = c.schema(m, stack)
			} else {
				out[k] = v
			}
		case "allOf", "oneOf", "anyOf":
			var list []any
			for _, e := range v.([]any) {
				s, err := c.schema(e.(map[string]any), stack)
				if err != nil {
					return nil, err
				}
				list = append(list, s)
			}
			out[k] = list
		default:
			if strings.HasPrefix(k, "x-kubernetes-") && k != "x-kubernetes-int-or-string" && k != "x-kubernetes-preserve-unknown-fields" {
				continue
			}
			out[k] = v
		}
		if err != nil {
			return nil, err
		}
	}
	if all, ok := out["allOf"].([]any); ok && len(all) == 1 {
		delete(out, "allOf")
		for k, v := range all[0].(map[string]any) {
			if _, set := out[k]; !set {
				out[k] = v
			}
		}
	}
	if out["x-kubernetes-int-or-string"] == true {
		delete(out, "x-kubernetes-int-or-string")
		delete(out, "type")
		delete(out, "format")
		out["oneOf"] = clone(special["io.k8s.apimachinery.pkg.util.intstr.IntOrString"])["oneOf"]
	}
	preserve := out["x-kubernetes-preserve-unknown-fields"] == true
	delete(out, "x-kubernetes-preserve-unknown-fields")
	if _, ok := out["properties"]; ok && !preserve {
		if _, set := out["additionalProperties"]; !set {
			out["additionalProperties"] = false
		}
	}
	return out, nil
}

// clone copies a schema through JSON.
func clone(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

// write stores s as indented JSON (encoding/json sorts map keys, so the
// output is stable).
func write(path string, s map[string]any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", " ")
	if err := enc.Encode(s); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "gen: %s (%d bytes)\n", path, buf.Len())
	return os.WriteFile(path, buf.Bytes(), 0o644)
}
