package nodeconfig

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// A Config ends up in errors and logs; its token must not.
func TestTokenNeverFormatted(t *testing.T) {
	const token = "s3cret-token-value"
	c := Config{DataDir: "/var/lib/rune", APIAddr: "tcp://127.0.0.1:7070", APIToken: token}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("opening", "config", c, "ptr", &c)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("opening", "config", c)
	for _, out := range []string{fmt.Sprint(c), fmt.Sprintf("%v", &c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%s", c), logged.String()} {
		if strings.Contains(out, token) {
			t.Errorf("token in %q", out)
		}
		if !strings.Contains(out, "REDACTED") || !strings.Contains(out, "tcp://127.0.0.1:7070") {
			t.Errorf("%q: want the settings with the token REDACTED", out)
		}
	}
}
