package faulttest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsNode is one nats-server process with JetStream on file storage. Its
// client port and store directory survive restarts; in a cluster its routes
// name the other nodes' cluster ports.
type natsNode struct {
	name        string
	port        int
	clusterPort int   // 0 outside a cluster
	routes      []int // the other nodes' cluster ports
	storeDir    string
	logDir      string
	p           *proc
}

// freePort asks the kernel for a free loopback port. Another process could
// take it before the child binds it; on loopback that is rare enough.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// newNATSNodes prepares n nodes (a cluster when n > 1) without starting
// them.
func newNATSNodes(t *testing.T, dir, logDir string, n int) []*natsNode {
	nodes := make([]*natsNode, n)
	for i := range nodes {
		nodes[i] = &natsNode{
			name:     "n" + strconv.Itoa(i+1),
			port:     freePort(t),
			storeDir: filepath.Join(dir, "nats-n"+strconv.Itoa(i+1)),
			logDir:   logDir,
		}
		if n > 1 {
			nodes[i].clusterPort = freePort(t)
		}
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b && n > 1 {
				a.routes = append(a.routes, b.clusterPort)
			}
		}
	}
	return nodes
}

func (n *natsNode) url() string { return "nats://127.0.0.1:" + strconv.Itoa(n.port) }

// start writes the node's config and starts it. An isolated node keeps its
// client port and store but listens for routes on a fresh port and dials
// none: the other nodes cannot reach it, nor it them, as if the network
// between them were cut.
func (n *natsNode) start(t *testing.T, isolated bool) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %s\nlisten: \"127.0.0.1:%d\"\n", n.name, n.port)
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n}\n", n.storeDir)
	if n.clusterPort != 0 {
		cport := n.clusterPort
		routes := n.routes
		if isolated {
			cport, routes = freePort(t), nil
		}
		fmt.Fprintf(&b, "cluster {\n  name: fault\n  listen: \"127.0.0.1:%d\"\n  routes: [", cport)
		for i, r := range routes {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "\"nats-route://127.0.0.1:%d\"", r)
		}
		b.WriteString("]\n}\n")
	}
	conf := filepath.Join(n.logDir, n.name+".conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	n.p = startProc(t, n.logDir, "nats-"+n.name, binNATS, "-c", conf)
}

// waitJetStream waits until url serves JetStream requests, which on a
// cluster needs a meta leader.
func waitJetStream(ctx context.Context, t *testing.T, url string, procs ...*proc) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		nc, err := nats.Connect(url, nats.Timeout(time.Second))
		if err == nil {
			var js jetstream.JetStream
			js, err = jetstream.New(nc)
			if err == nil {
				_, err = js.AccountInfo(ctx)
			}
			nc.Close()
			if err == nil {
				return
			}
		}
		for _, p := range procs {
			if p.exited() {
				t.Fatalf("%s exited:\n%s", p.name, p.tail(20))
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("JetStream at %s not ready after 30s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
