package main

import (
	"bytes"
	"fmt"
	"os"
	"sync"

	chart "github.com/wcharczuk/go-chart/v2"
	"github.com/wcharczuk/go-chart/v2/drawing"
)

// Chart size in pixels.
const chartWidth, chartHeight = 1200, 600

// chartFont loads go-chart's default font once. Render would load it
// itself, but go-chart's lazy loading is not safe for concurrent use (the
// race detector catches it); a font set on the chart bypasses it.
var chartFont = sync.OnceValues(chart.GetDefaultFont)

// writeChart draws throughput (final results recorded per second, left
// axis) and calls in flight at the mock API (right axis) over the run, as
// one PNG.
func writeChart(path, title string, samples []Sample) error {
	var buf bytes.Buffer
	if err := renderChart(&buf, title, samples); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func renderChart(buf *bytes.Buffer, title string, samples []Sample) error {
	var t, rate, inFlight []float64
	maxT, maxRate, maxInFlight := 1.0, 1.0, 1.0
	for _, s := range samples {
		t = append(t, s.T)
		rate = append(rate, s.Rate)
		inFlight = append(inFlight, float64(max(s.MockInFlight, 0)))
		maxT, maxRate, maxInFlight = max(maxT, s.T), max(maxRate, s.Rate), max(maxInFlight, float64(s.MockInFlight))
	}
	// go-chart needs two points to draw a line.
	for len(t) < 2 {
		t, rate, inFlight = append(t, float64(len(t))), append(rate, 0), append(inFlight, 0)
	}
	font, err := chartFont()
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	blue, orange := drawing.ColorFromHex("1f77b4"), drawing.ColorFromHex("ff7f0e")
	// go-chart draws YAxis on the right and YAxisSecondary on the left, and
	// (v2.1.2) sizes the secondary axis from the primary axis's ticks. So
	// both axes share the rate's numeric range: in-flight values are scaled
	// into it, and the right axis's ticks sit at scaled positions while
	// their labels show calls in flight.
	xTicks, xRange := niceTicks(maxT, 20)
	rateTicks, rateRange := niceTicks(maxRate, 10)
	flightTicks, flightRange := niceTicks(maxInFlight, 10)
	scale := rateRange.Max / flightRange.Max
	for i := range flightTicks {
		flightTicks[i].Value *= scale
	}
	for i := range inFlight {
		inFlight[i] *= scale
	}
	graph := chart.Chart{
		Title:  title,
		Font:   font,
		Width:  chartWidth,
		Height: chartHeight,
		// Room above the plot for the title and, below it, the legend.
		Background: chart.Style{Padding: chart.Box{Top: 90, Left: 20, Right: 20, Bottom: 20}},
		XAxis: chart.XAxis{
			Name: "seconds since the first publish", Ticks: xTicks, Range: xRange, ValueFormatter: wholeNumber,
		},
		YAxisSecondary: chart.YAxis{
			Name: "jobs recorded per second", Ticks: rateTicks, Range: rateRange, ValueFormatter: wholeNumber,
		},
		YAxis: chart.YAxis{
			Name: "calls in flight (mock API)", Ticks: flightTicks,
			Range: &chart.ContinuousRange{Min: 0, Max: rateRange.Max}, ValueFormatter: wholeNumber,
		},
		Series: []chart.Series{
			chart.ContinuousSeries{
				Name: "jobs recorded per second (left axis)", XValues: t, YValues: rate, YAxis: chart.YAxisSecondary,
				Style: chart.Style{StrokeColor: blue, StrokeWidth: 2},
			},
			chart.ContinuousSeries{
				Name: "calls in flight at the mock API (right axis)", XValues: t, YValues: inFlight, YAxis: chart.YAxisPrimary,
				Style: chart.Style{StrokeColor: orange, StrokeWidth: 2},
			},
		},
	}
	graph.Elements = []chart.Renderable{chart.LegendThin(&graph)}
	if err := graph.Render(chart.PNG, buf); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	return nil
}

func wholeNumber(v any) string {
	if f, ok := v.(float64); ok {
		return commas(f)
	}
	return fmt.Sprint(v)
}

// niceTicks marks an axis from 0 every 1, 2 or 5 × 10^k units, whichever
// gives at most about maxTicks ticks, up to the first tick at or above
// top; the axis range ends at that tick.
func niceTicks(top float64, maxTicks int) ([]chart.Tick, *chart.ContinuousRange) {
	top = max(top, 1)
	step := 1.0
	for i := 0; top/step > float64(maxTicks); i++ {
		step *= []float64{2, 2.5, 2}[i%3] // 1, 2, 5, 10, 20, 50, …
	}
	var ticks []chart.Tick
	v := 0.0
	for ; ; v += step {
		ticks = append(ticks, chart.Tick{Value: v, Label: commas(v)})
		if v >= top {
			break
		}
	}
	return ticks, &chart.ContinuousRange{Min: 0, Max: v}
}
