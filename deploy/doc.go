// Package deploy holds no code: its tests check the deployment files beside
// it (the NATS role configs, the Dockerfile, compose, Kubernetes manifests
// and dashboards) against the real config structs, consumers, ports and
// metric names, so a rename in the code breaks a test instead of a rollout.
package deploy
