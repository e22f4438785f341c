package natsx_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/switchyard-io/switchyard/pkg/natsx"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
)

func runServer(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.Port, opts.NoSigs, opts.NoLog = "127.0.0.1", server.RANDOM_PORT, true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(5 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

func TestConnectNkey(t *testing.T) {
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	seedFile := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()
	otherFile := filepath.Join(t.TempDir(), "other.nk")
	if err := os.WriteFile(otherFile, otherSeed, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := runServer(t, &server.Options{Nkeys: []*server.NkeyUser{{Nkey: pub}}})

	cfg := natsx.Config{URL: srv.ClientURL(), NkeyFile: seedFile, ConnectTimeout: 2 * time.Second}.WithDefaults()
	nc, err := natsx.Connect(cfg, natstest.Logger(t))
	if err != nil {
		t.Fatalf("connect with the listed nkey: %v", err)
	}
	nc.Close()

	cfg.NkeyFile = otherFile
	if nc, err := natsx.Connect(cfg, natstest.Logger(t)); err == nil {
		nc.Close()
		t.Fatal("an unknown nkey connected")
	}
	cfg.NkeyFile = filepath.Join(t.TempDir(), "missing.nk")
	if _, err := natsx.Connect(cfg, natstest.Logger(t)); err == nil || !strings.Contains(err.Error(), "nats.nkey_file") {
		t.Fatalf("missing seed file: err = %v, want one naming nats.nkey_file", err)
	}
}

func TestConnectTLSClientCert(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	ca.write(t, dir, "ca", ca.cert, nil)
	srvCert, srvKey := ca.issue(t, "nats-server", x509.ExtKeyUsageServerAuth)
	ca.write(t, dir, "server", srvCert, srvKey)
	cliCert, cliKey := ca.issue(t, "switchyard-worker", x509.ExtKeyUsageClientAuth)
	ca.write(t, dir, "client", cliCert, cliKey)
	// A certificate from another CA, which the server must refuse.
	rogue := newCA(t)
	rCert, rKey := rogue.issue(t, "intruder", x509.ExtKeyUsageClientAuth)
	rogue.write(t, dir, "rogue", rCert, rKey)

	tlsc, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: filepath.Join(dir, "server.crt"), KeyFile: filepath.Join(dir, "server.key"),
		CaFile: filepath.Join(dir, "ca.crt"), Verify: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := runServer(t, &server.Options{TLSConfig: tlsc, TLSVerify: true, TLSTimeout: 2})
	url := strings.Replace(srv.ClientURL(), "nats://", "tls://", 1)

	base := natsx.Config{URL: url, ConnectTimeout: 2 * time.Second}.WithDefaults()
	tests := []struct {
		name    string
		tls     natsx.TLSConfig
		wantErr string
	}{
		{"client certificate", natsx.TLSConfig{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, "client.crt"), Key: filepath.Join(dir, "client.key")}, ""},
		{"no client certificate", natsx.TLSConfig{CA: filepath.Join(dir, "ca.crt")}, "connect to NATS"},
		{"certificate of another CA", natsx.TLSConfig{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, "rogue.crt"), Key: filepath.Join(dir, "rogue.key")}, "connect to NATS"},
		{"server not trusted", natsx.TLSConfig{CA: filepath.Join(dir, "rogue-ca.crt"), Cert: filepath.Join(dir, "client.crt"), Key: filepath.Join(dir, "client.key")}, "connect to NATS"},
		{"key does not match", natsx.TLSConfig{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, "client.crt"), Key: filepath.Join(dir, "rogue.key")}, "nats.tls.cert, nats.tls.key"},
		{"missing CA", natsx.TLSConfig{CA: filepath.Join(dir, "nope.crt")}, "nats.tls.ca"},
	}
	rogue.write(t, dir, "rogue-ca", rogue.cert, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			cfg.TLS = tt.tls
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			nc, err := natsx.Connect(cfg, natstest.Logger(t))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("connect: %v", err)
				}
				defer nc.Close()
				if !nc.TLSRequired() {
					t.Fatal("connection is not TLS")
				}
				if err := nc.Flush(); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				nc.Close()
				t.Fatalf("connected, want an error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     natsx.Config
		wantErr string
	}{
		{"defaults", natsx.Config{}, ""},
		{"several URLs", natsx.Config{URL: "nats://a:4222, nats://b:4222,tls://c:4222"}, ""},
		{"bad URL in a list", natsx.Config{URL: "nats://a:4222,b"}, "url:"},
		{"user and token", natsx.Config{User: "u", Token: "t"}, "token: set one of"},
		{"token and nkey", natsx.Config{Token: "t", NkeyFile: "/k"}, "nkey_file: set one of"},
		{"nkey and creds", natsx.Config{NkeyFile: "/k", CredsFile: "/c"}, "creds_file: set one of"},
		{"password alone", natsx.Config{Password: "p"}, "password: needs a user"},
		{"cert without key", natsx.Config{TLS: natsx.TLSConfig{Cert: "/c"}}, "tls: set cert and key together"},
		{"key without cert", natsx.Config{TLS: natsx.TLSConfig{Key: "/k"}}, "tls: set cert and key together"},
		{"replicas", natsx.Config{Replicas: 2}, "replicas:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.WithDefaults().Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// testCA issues certificates for one test; nothing is written outside
// t.TempDir().
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "switchyard test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) issue(t *testing.T, name string, usage x509.ExtKeyUsage) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func (ca *testCA) write(t *testing.T, dir, name string, cert *x509.Certificate, key *ecdsa.PrivateKey) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if key == nil {
		return
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestConnectUserPasswordAndToken(t *testing.T) {
	users := runServer(t, &server.Options{Users: []*server.User{{Username: "worker", Password: "s3cret"}}})
	tokens := runServer(t, &server.Options{Authorization: "t0ken"})
	tests := []struct {
		name   string
		cfg    natsx.Config
		wantOK bool
	}{
		{"user and password", natsx.Config{URL: users.ClientURL(), User: "worker", Password: "s3cret"}, true},
		{"wrong password", natsx.Config{URL: users.ClientURL(), User: "worker", Password: "guess"}, false},
		{"no credentials", natsx.Config{URL: users.ClientURL()}, false},
		{"token", natsx.Config{URL: tokens.ClientURL(), Token: "t0ken"}, true},
		{"wrong token", natsx.Config{URL: tokens.ClientURL(), Token: "guess"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.ConnectTimeout = 2 * time.Second
			cfg = cfg.WithDefaults()
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			nc, err := natsx.Connect(cfg, natstest.Logger(t))
			if err == nil {
				nc.Close()
			}
			if (err == nil) != tt.wantOK {
				t.Fatalf("connect: err = %v, want success %v", err, tt.wantOK)
			}
		})
	}
}

func TestConnectCredsFile(t *testing.T) {
	operator, _ := nkeys.CreateOperator()
	opub, _ := operator.PublicKey()
	account, _ := nkeys.CreateAccount()
	apub, _ := account.PublicKey()
	ajwt, err := jwt.NewAccountClaims(apub).Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	resolver := &server.MemAccResolver{}
	if err := resolver.Store(apub, ajwt); err != nil {
		t.Fatal(err)
	}
	srv := runServer(t, &server.Options{TrustedKeys: []string{opub}, AccountResolver: resolver})

	creds := func(signer nkeys.KeyPair) string {
		user, _ := nkeys.CreateUser()
		upub, _ := user.PublicKey()
		seed, _ := user.Seed()
		ujwt, err := jwt.NewUserClaims(upub).Encode(signer)
		if err != nil {
			t.Fatal(err)
		}
		file, err := jwt.FormatUserConfig(ujwt, seed)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "user.creds")
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cfg := natsx.Config{URL: srv.ClientURL(), CredsFile: creds(account), ConnectTimeout: 2 * time.Second}.WithDefaults()
	nc, err := natsx.Connect(cfg, natstest.Logger(t))
	if err != nil {
		t.Fatalf("connect with creds signed by a trusted account: %v", err)
	}
	nc.Close()

	other, _ := nkeys.CreateAccount()
	cfg.CredsFile = creds(other)
	if nc, err := natsx.Connect(cfg, natstest.Logger(t)); err == nil {
		nc.Close()
		t.Fatal("creds of an unknown account connected")
	}
	cfg.CredsFile = filepath.Join(t.TempDir(), "missing.creds")
	if _, err := natsx.Connect(cfg, natstest.Logger(t)); err == nil || !strings.Contains(err.Error(), "nats.creds_file") {
		t.Fatalf("missing creds file: err = %v, want one naming nats.creds_file", err)
	}
}
