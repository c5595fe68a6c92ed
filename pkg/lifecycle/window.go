package lifecycle

import (
	"fmt"
	"strings"
	"time"
)

// Completion windows.
const (
	CompletionWindowDefault = 24 * time.Hour
	// MaxCompletionWindow bounds user-chosen windows.
	MaxCompletionWindow = 7 * 24 * time.Hour
)

// ParseCompletionWindow reads a batch completion window: the OpenAI forms
// "24h" and "1h", or any Go duration ("90m", "2h30m"). Empty means the
// default. The window must be positive and at most MaxCompletionWindow.
func ParseCompletionWindow(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return CompletionWindowDefault, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("completion_window: %q is not a duration such as \"24h\" or \"1h\"", v)
	}
	if d <= 0 {
		return 0, fmt.Errorf("completion_window: %q must be positive", v)
	}
	if d > MaxCompletionWindow {
		return 0, fmt.Errorf("completion_window: %q exceeds the maximum of %s", v, MaxCompletionWindow)
	}
	return d, nil
}
