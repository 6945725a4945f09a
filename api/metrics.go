package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the HTTP edge's collectors. Labels are bounded: route kind, method,
// status code.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	bytesOut prometheus.Counter
	bytesIn  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_http_requests_total", Help: "HTTP requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "berth_http_request_duration_seconds",
			Help:    "HTTP request latency by route and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route", "method"}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_http_response_bytes_total", Help: "Bytes written in response bodies.",
		}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_http_request_bytes_total", Help: "Bytes declared in request bodies (Content-Length).",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.latency, m.bytesOut, m.bytesIn} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) observe(route, method string, status int, d time.Duration, out, in int64) {
	method = methodLabel(method)
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route, method).Observe(d.Seconds())
	m.bytesOut.Add(float64(out))
	if in > 0 {
		m.bytesIn.Add(float64(in))
	}
}

// methodLabel bounds the method label: any client can send any method token,
// and each distinct one would otherwise become a new series.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return method
	}
	return "other"
}
