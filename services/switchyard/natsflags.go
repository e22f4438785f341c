package main

import (
	"flag"
	"io"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/internal/service"
	"github.com/switchyard-io/switchyard/pkg/natsx"
)

// natsClientFlags registers the flags a command that talks to NATS as a
// client takes: the server and its credentials, as switchyard status.
func natsClientFlags(fs *flag.FlagSet) *service.Flags {
	flags := service.NewFlags(fs)
	flags.Key("server", "nats.url", "", "NATS server `URL`s, comma separated (default $NATS_URL, else nats://127.0.0.1:4222; env SWITCHYARD_NATS__URL)")
	flags.Key("creds", "nats.creds_file", "", "NATS credentials `file`")
	flags.Key("user", "nats.user", "", "NATS `user`")
	flags.Key("password", "nats.password", "", "NATS `password`")
	flags.Key("nats-token", "nats.token", "", "NATS `token`")
	return flags
}

// connectClient connects as a client named name, after the flags are
// parsed. The caller closes the connection.
func connectClient(flags *service.Flags, stderr io.Writer, name string) (*nats.Conn, jetstream.JetStream, error) {
	var defaults map[string]any
	if u := envOr("NATS_URL", ""); u != "" {
		defaults = map[string]any{"nats.url": u}
	}
	cfg, logger, err := flags.Load(stderr, defaults)
	if err != nil {
		return nil, nil, err
	}
	natsCfg := cfg.NATS
	natsCfg.Name = name
	nc, err := natsx.Connect(natsCfg, logger)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}
