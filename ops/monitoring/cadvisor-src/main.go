// cadvisor-lite: cAdvisor's container manager and its Prometheus collector, built from the
// module proxy (github.com/google/cadvisor and its lib module, v0.61.0). Upstream's own command
// (cmd/) is not a published module, so this is the smallest main that serves what `workup scale`
// reads: container_cpu_usage_seconds_total with the containers' labels (Swarm's
// container_label_com_docker_swarm_service_name among them) at /metrics.
//
// Flags are cAdvisor's own (-docker, -housekeeping_interval, -docker_only, ...) plus -listen.
package main

import (
	"flag"
	"net/http"
	"time"

	_ "github.com/google/cadvisor/container/docker/install" // the Docker provider (-docker endpoint)
	"github.com/google/cadvisor/lib/cache/memory"
	"github.com/google/cadvisor/lib/container"
	"github.com/google/cadvisor/lib/manager"
	"github.com/google/cadvisor/lib/metrics"
	info "github.com/google/cadvisor/lib/model"
	"github.com/google/cadvisor/lib/utils/sysfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address of the /metrics and /healthz listener")
	klog.InitFlags(nil)
	flag.Parse()

	// CPU and memory only: what the autoscaler reads, and cheap enough for a 2-core test machine
	included := container.MetricSet{container.CpuUsageMetrics: struct{}{}, container.MemoryUsageMetrics: struct{}{}}
	interval := *manager.HousekeepingInterval
	dynamic := false // a fixed interval: tests rely on fresh samples every interval
	m, err := manager.New(memory.New(2*time.Minute, nil), sysfs.NewRealSysFs(),
		manager.HousekeepingConfig{Interval: &interval, AllowDynamic: &dynamic},
		included, nil, nil, "", 0)
	if err != nil {
		klog.Fatalf("cadvisor: manager: %v", err)
	}
	if err := m.Start(); err != nil {
		klog.Fatalf("cadvisor: start: %v", err)
	}
	registry := prometheus.NewRegistry()
	registry.MustRegister(metrics.NewPrometheusCollector(m, metrics.DefaultContainerLabels, included, clock.RealClock{},
		info.RequestOptions{IdType: "name", Count: 1, Recursive: true}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	klog.Infof("cadvisor: serving /metrics on %s", *listen)
	klog.Fatal(http.ListenAndServe(*listen, mux))
}
