package worker

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// EscalationMode says what a worker does with a request near its deadline.
type EscalationMode string

const (
	// EscalateRoute sends a request claimed inside the threshold to the
	// escalation model instead of its own (route at claim).
	EscalateRoute EscalationMode = "route"
	// EscalateRace starts a racing copy of the request on the escalation
	// model; the first completed wins, the other is superseded.
	EscalateRace EscalationMode = "race"
)

// EscalationModeDefault is the mode of an escalation that names none.
const EscalationModeDefault = EscalateRoute

// Escalation is one model's escalation near the deadline. The escalation
// model's own route (upstream.routes[<model>], or the default route) and
// its per-model limits serve the escalated calls.
type Escalation struct {
	// Model is the escalation model: a faster or dedicated model.
	Model string `yaml:"model" json:"model"`
	// Threshold: a request whose deadline (expires_at) is less than this
	// far away is escalated.
	Threshold time.Duration `yaml:"threshold" json:"threshold"`
	// Mode is route or race (default route).
	Mode EscalationMode `yaml:"mode" json:"mode"`
}

// Escalations are the escalations by the model requested.
type Escalations map[string]Escalation

// WithDefaults fills each escalation's unset mode.
func (e Escalations) WithDefaults() Escalations {
	if len(e) == 0 {
		return e
	}
	out := make(Escalations, len(e))
	for m, esc := range e {
		if esc.Mode == "" {
			esc.Mode = EscalationModeDefault
		}
		out[m] = esc
	}
	return out
}

// Validate reports the first bad escalation, in model order, as a
// *lifecycle.ConfigError named by its key under "escalations": a blank
// model, a threshold not above zero, an unknown mode, a model escalated to
// itself, or an escalation model that escalates again (chains and cycles
// are refused: a copy is never escalated, and a routed call never routed
// twice).
func (e Escalations) Validate() error {
	for _, m := range slices.Sorted(maps.Keys(e)) {
		esc := e[m]
		key := fmt.Sprintf("escalations[%q]", m)
		switch {
		case esc.Model == "":
			return lifecycle.ConfigErrorf(key+".model", "is required")
		case esc.Model == m:
			return lifecycle.ConfigErrorf(key+".model", "%q escalates to itself", m)
		case esc.Threshold <= 0:
			return lifecycle.ConfigErrorf(key+".threshold", "must be positive, got %s", esc.Threshold)
		case esc.Mode != EscalateRoute && esc.Mode != EscalateRace && esc.Mode != "":
			return lifecycle.ConfigErrorf(key+".mode", "%q is not one of route, race", esc.Mode)
		}
		if _, chained := e[esc.Model]; chained {
			return lifecycle.ConfigErrorf(key+".model", "%q has an escalation of its own: chains and cycles are not allowed", esc.Model)
		}
	}
	return nil
}

// near returns the escalation of model when deadline is less than its
// threshold away from now.
func (e Escalations) near(model string, deadline, now time.Time) (Escalation, bool) {
	esc, ok := e[model]
	if !ok || deadline.IsZero() || deadline.Sub(now) >= esc.Threshold {
		return Escalation{}, false
	}
	if esc.Mode == "" {
		esc.Mode = EscalationModeDefault
	}
	return esc, true
}
