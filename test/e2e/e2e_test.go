// Package e2e holds whole-binary tests: runed and rune built from this tree,
// run inside network namespaces the tests create and remove.
package e2e

import (
	"os"
	"testing"

	"github.com/runenet/runenet/internal/testkit"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testkit.RemoveBinaries()
	os.Exit(code)
}
