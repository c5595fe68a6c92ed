package deployments_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/config"
)

// loadCompose loads compose files from the repository root with the
// loader `docker compose` itself uses (compose-go, the version docker
// compose v2.40 ships), so what parses here parses for `docker compose
// config`; the environment is empty, so every ${VAR:-default} takes its
// default.
func loadCompose(t *testing.T, files ...string) *types.Project {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	var cfs []types.ConfigFile
	for _, f := range files {
		cfs = append(cfs, types.ConfigFile{Filename: filepath.Join(root, f)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := loader.LoadWithContext(ctx, types.ConfigDetails{WorkingDir: root, ConfigFiles: cfs, Environment: types.Mapping{}},
		func(o *loader.Options) { o.SetProjectName("salvo", true) })
	require.NoError(t, err, files)
	return p
}

// Every depends_on waits on a condition its target can meet: healthy
// needs a health check, completed needs a one-shot. Nothing starts on a
// bare "started".
func requireOrderedStart(t *testing.T, p *types.Project) {
	t.Helper()
	for name, s := range p.Services {
		for dep, d := range s.DependsOn {
			target, ok := p.Services[dep]
			require.True(t, ok, "%s depends on missing %s", name, dep)
			switch d.Condition {
			case types.ServiceConditionHealthy:
				require.NotNil(t, target.HealthCheck, "%s waits for %s to be healthy, which has no health check", name, dep)
				require.NotEmpty(t, target.HealthCheck.Test, dep)
			case types.ServiceConditionCompletedSuccessfully:
				require.Equal(t, "no", target.Restart, dep)
			default:
				require.Failf(t, "unordered start", "%s depends on %s with condition %q", name, dep, d.Condition)
			}
		}
	}
}

func TestComposeRunsTheWholeStackInOrder(t *testing.T) {
	t.Parallel()
	p := loadCompose(t, "docker-compose.yml")
	require.ElementsMatch(t, []string{"nats", "redis", "mockupstream", "worker", "out-dir", "producer"}, p.ServiceNames())
	requireOrderedStart(t, p)

	nats := p.Services["nats"]
	require.Contains(t, nats.Command, "-js")
	require.Equal(t, "redis:7", p.Services["redis"].Image)

	w := p.Services["worker"]
	require.NotNil(t, w.Deploy)
	require.Equal(t, 3, *w.Deploy.Replicas)
	require.Equal(t, "nats://nats:4222", *w.Environment["SALVO_NATS_URL"])
	require.Equal(t, "redis://redis:6379", *w.Environment["SALVO_REDIS_URL"])
	require.Equal(t, "http://mockupstream:8089", *w.Environment["SALVO_UPSTREAM_URL"])
	require.Contains(t, strings.Join(w.HealthCheck.Test, " "), "http://127.0.0.1:8081/readyz")
	known := map[string]bool{}
	for _, k := range config.Keys() {
		known[config.EnvName(k)] = true
	}
	for name := range w.Environment {
		require.True(t, known[name] || name == "SALVO_UPSTREAM_URL", "the workers get %s, which no setting reads", name)
	}
	require.NotNil(t, w.StopGracePeriod)
	require.Greater(t, time.Duration(*w.StopGracePeriod), 30*time.Second, "longer than the default shutdown_grace")
	for _, name := range []string{"worker", "mockupstream", "producer", "out-dir"} {
		require.NotNil(t, p.Services[name].Build, name)
		require.Equal(t, "Dockerfile", p.Services[name].Build.Dockerfile, name)
	}

	// The producer submits the example batch and writes the results into
	// ./out on the host.
	prod := p.Services["producer"]
	require.Equal(t, []string{"/usr/local/bin/producer"}, []string(prod.Entrypoint))
	require.Equal(t, "submit", prod.Command[0])
	require.Contains(t, prod.Command, "--wait")
	require.Contains(t, prod.Command, "/examples/batch.jsonl")
	// The example holds a bad line on purpose; without --skip-invalid the
	// producer publishes nothing.
	require.Contains(t, prod.Command, "--skip-invalid")
	i := slices.Index(prod.Command, "--output")
	require.Positive(t, i)
	require.True(t, strings.HasPrefix(prod.Command[i+1], "/out/"))
	mounts := map[string]string{}
	for _, v := range prod.Volumes {
		mounts[v.Target] = v.Source
	}
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	require.Equal(t, filepath.Join(root, "out"), mounts["/out"])
	require.Equal(t, filepath.Join(root, "examples"), mounts["/examples"])
	require.Equal(t, "1000:1000", prod.User)
	require.Equal(t, types.ServiceConditionHealthy, prod.DependsOn["worker"].Condition)
}

func TestComposeClusterOverrideRunsThreeNATSNodesWithR3Streams(t *testing.T) {
	t.Parallel()
	p := loadCompose(t, "docker-compose.yml", "docker-compose.cluster.yml")
	requireOrderedStart(t, p)
	for _, n := range []string{"nats", "nats-2", "nats-3"} {
		cmd := strings.Join(p.Services[n].Command, " ")
		require.Contains(t, cmd, "--cluster_name salvo", n)
		require.Contains(t, cmd, "-js", n)
		require.Contains(t, p.Services["worker"].DependsOn, n)
	}
	w := p.Services["worker"]
	require.Equal(t, "3", *w.Environment["SALVO_STREAMS_REPLICAS"])
	require.Equal(t, "nats://nats:4222,nats://nats-2:4222,nats://nats-3:4222", *w.Environment["SALVO_NATS_URL"])
	require.Equal(t, "redis://redis:6379", *w.Environment["SALVO_REDIS_URL"], "the override keeps the rest of the worker's settings")
}
