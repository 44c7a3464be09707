// Command edge runs the ingress the way an edge runed does (Badger log,
// View, controller, ingress) without the rest of runed, for bench/ingress:
// it casts a service exposing -host with a self-signed certificate stored
// as a TLS secret, and one exposing plain.<host> without TLS, both on the
// backend, and serves them on -http and -https.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/ingress"
	"github.com/runenet/runenet/orderedlog/badger"
)

func main() {
	dataDir := flag.String("data-dir", "", "directory for the Badger log (required; use a fresh temp dir)")
	host := flag.String("host", "bench.local", "exposed host")
	backend := flag.String("backend", "127.0.0.1:8080", "backend IP:port (the service's one endpoint)")
	httpAddr := flag.String("http", "127.0.0.1:8081", "ingress HTTP address")
	httpsAddr := flag.String("https", "127.0.0.1:8443", "ingress HTTPS address")
	certOut := flag.String("cert-out", "", "if set, write the self-signed certificate here (PEM) for clients")
	cpuProfile := flag.String("cpuprofile", "", "if set, write a CPU profile of the whole run here (on SIGINT/SIGTERM)")
	flag.Parse()
	be, err := netip.ParseAddrPort(*backend)
	if err != nil || *dataDir == "" {
		log.Fatalf("need -data-dir and -backend IP:PORT (%v)", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	lg, err := badger.Open(*dataDir, badger.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer lg.Close()
	if err := cluster.Bootstrap(ctx, lg, netip.MustParsePrefix("10.96.0.0/16")); err != nil {
		log.Fatal(err)
	}
	view := cluster.NewView(lg, cluster.ViewOptions{})
	viewDone := make(chan struct{})
	go func() { defer close(viewDone); view.Run(ctx) }()
	ctl := cluster.NewController(lg, view, cluster.ControllerOptions{})

	certPEM, keyPEM := selfSigned(*host)
	if _, err := ingress.StoreTLSSecret(ctx, lg, "default", "bench-tls", certPEM, keyPEM); err != nil {
		log.Fatal(err)
	}
	if *certOut != "" {
		if err := os.WriteFile(*certOut, certPEM, 0o644); err != nil {
			log.Fatal(err)
		}
	}
	// Two routes to the one backend: the TLS one, whose plain HTTP answers
	// redirect to HTTPS, and plain.<host> without TLS, so the HTTP figures
	// measure proxying rather than redirects.
	specs := fmt.Sprintf(`services:
  - name: bench
    ports:
      - name: http
        port: 80
        targetPort: %d
    expose:
      host: %s
      port: http
      tls:
        mode: manual
        secret: bench-tls
  - name: bench-plain
    ports:
      - name: http
        port: 80
        targetPort: %d
    expose:
      host: plain.%s
      port: http
`, be.Port(), *host, be.Port(), *host)
	if _, _, err := ctl.Cast(ctx, []cluster.SourceFile{{Name: "bench.yaml", Data: []byte(specs)}}); err != nil {
		log.Fatal(err)
	}
	// An instance IP belongs to one instance, so bench-plain's is the next
	// address: the backend listens on every address of the namespace's lo.
	for svc, ip := range map[string]netip.Addr{"bench": be.Addr(), "bench-plain": be.Addr().Next()} {
		if _, err := ctl.RegisterInstance(ctx, cluster.Instance{ID: svc + "-1", Service: svc, Namespace: "default", Node: "edge", IP: ip, Ready: true}); err != nil {
			log.Fatal(err)
		}
	}
	ing, err := ingress.New(lg, view, ingress.Options{HTTPAddr: *httpAddr, HTTPSAddr: *httpsAddr})
	if err != nil {
		log.Fatal(err)
	}
	if err := ing.Start(); err != nil {
		log.Fatal(err)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	log.Printf("edge ingress serving %s (HTTPS) and plain.%s (HTTP) on %s and %s", *host, *host, *httpAddr, *httpsAddr)
	<-ctx.Done()
	ing.Close()
	<-viewDone // before the deferred lg.Close, so the View does not see the log vanish
}

func selfSigned(host string) (certPEM, keyPEM []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}
