// Command plot draws the samples bench/mixload wrote (a CSV) as a PNG:
// resident memory (anonymous and file-backed), goroutines, open files and
// the store file's size over the run, one panel each, so that growth
// without bound shows at a glance. It is a module of its own so that the
// plotting library stays out of caddy-sso's dependencies.
//
//	cd bench/plot && go run . -csv /tmp/soak.csv -png ../../docs/soak.png -title "soak, 30 min"
package main

import (
	"encoding/csv"
	"flag"
	"fmt"
	"image/color"
	"log"
	"os"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

func main() {
	in := flag.String("csv", "", "CSV from bench/mixload")
	out := flag.String("png", "soak.png", "PNG to write")
	title := flag.String("title", "", "title above the panels")
	flag.Parse()
	if err := run(*in, *out, *title); err != nil {
		log.Fatal("plot: ", err)
	}
}

// panel is one chart: the columns it draws.
type panel struct {
	title, unit string
	columns     []string
}

var panels = []panel{
	{"resident memory", "MiB", []string{"rss_anon_mib", "rss_file_mib"}},
	{"goroutines", "", []string{"goroutines"}},
	{"open files", "", []string{"open_files"}},
	{"store file", "MiB", []string{"store_mib"}},
}

var colors = []color.Color{color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}}

func run(in, out, title string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return err
	}
	if len(rows) < 2 {
		return fmt.Errorf("%s has no samples", in)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	value := func(row []string, name string) (float64, error) {
		i, ok := col[name]
		if !ok {
			return 0, fmt.Errorf("%s has no column %q", in, name)
		}
		return strconv.ParseFloat(row[i], 64)
	}

	plots := make([][]*plot.Plot, len(panels))
	for i, pn := range panels {
		p := plot.New()
		p.Title.Text = pn.title
		if i == 0 && title != "" {
			p.Title.Text = title + ": " + pn.title
		}
		p.X.Label.Text = "minutes"
		p.Y.Label.Text = pn.unit
		p.Y.Min = 0
		top := 0.0
		for j, name := range pn.columns {
			pts := make(plotter.XYs, 0, len(rows)-1)
			for _, row := range rows[1:] {
				x, err := value(row, "minute")
				if err != nil {
					return err
				}
				y, err := value(row, name)
				if err != nil {
					return err
				}
				pts = append(pts, plotter.XY{X: x, Y: y})
				top = max(top, y)
			}
			line, err := plotter.NewLine(pts)
			if err != nil {
				return err
			}
			line.Color = colors[j%len(colors)]
			line.Width = vg.Points(1.5)
			p.Add(line)
			if len(pn.columns) > 1 {
				p.Legend.Add(name, line)
			}
		}
		// Room above the lines for the legend.
		p.Y.Max = max(top*1.3, 1)
		p.Legend.Top = true
		p.Legend.Left = true
		plots[i] = []*plot.Plot{p}
	}
	img := vgimg.New(vg.Points(720), vg.Points(220*float64(len(panels))))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadX: vg.Millimeter, PadY: vg.Millimeter * 3,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	w, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
