package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/runenet/runenet/internal/tmpfstest"
)

// runed whose data directory's disk fills up refuses casts with "disk full"
// and keeps answering DNS — it does not die — and casts work again once
// space is freed.
func TestFullDiskKeepsDNSAndRefusesCasts(t *testing.T) {
	n := newDNSNode(t)
	mnt := tmpfstest.Mount(t, 96<<20)
	const reserve = 48 << 20
	dataDir := filepath.Join(mnt, "data")
	n.editCorefile(t, "\t\tdata_dir "+n.dataDir+"\n", "\t\tdata_dir "+dataDir+"\n\t\tdisk_reserve 48MiB\n")
	n.dataDir, n.api = dataDir, []string{"--api", "unix://" + filepath.Join(dataDir, "runed.sock")}
	n.start(t)
	n.waitSOA(t, 20*time.Second)
	n.cast(t, "service:\n  name: api\n  ports:\n    - port: 8080\n")
	n.waitAnswer(t, "api.default.rune.", 30*time.Second)

	release := tmpfstest.Fill(t, mnt, reserve-(1<<20))
	f := filepath.Join(t.TempDir(), "web.yaml")
	if err := os.WriteFile(f, []byte("service:\n  name: web\n  ports:\n    - port: 80\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := n.ns.Command(append(append([]string{n.rune}, n.api...), "cast", f)...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "disk full") {
		t.Fatalf("cast on a full disk: %v\n%s", err, out)
	}
	for i := 0; i < 20; i++ {
		if r := n.ask(t, "udp", "api.default.rune.", dns.TypeA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			t.Fatalf("DNS while the disk is full: %v", r)
		}
	}
	if !strings.Contains(n.log.String(), "disk nearly full") {
		t.Errorf("runed's log does not say the disk is full:\n%s", n.log.String())
	}

	release()
	n.cast(t, "service:\n  name: web\n  ports:\n    - port: 80\n")
	n.waitAnswer(t, "web.default.rune.", 30*time.Second)
	if n.cmd.ProcessState != nil {
		t.Fatalf("runed exited: %v", n.cmd.ProcessState)
	}
}
