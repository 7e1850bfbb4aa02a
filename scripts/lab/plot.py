"""The run drawn as an SVG: two panels over time, bandwidth and RTT, each beside the
truth, with markers for the lab's events (red) and the controller's adaptations
(green). Drawn from timeline.jsonl, the per-second rows the lab appends while it runs.
"""
import math
import os

from .view import json_lines

W, H, LEFT, RIGHT, TOP = 900, 560, 60, 20, 40
PANEL_H = (H - 3 * TOP - 20) / 2


def ticks(vmax, n=10):
    """Tick values from 0 to vmax: steps of 1, 2 or 5 times a power of ten, about n."""
    if vmax <= 0:
        return [0]
    raw = vmax / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return [k * step for k in range(int(vmax / step * (1 + 1e-9)) + 1)]


def tick_label(v):
    """A tick value as short as its step allows."""
    def whole(x):
        return abs(x - round(x)) < 1e-6
    return "%d" % round(v) if whole(v) else ("%.1f" % v if whole(v * 10) else "%.2f" % v)


def dash(dashed):
    return 'stroke-dasharray="6,4"' if dashed else ""


class Svg:
    """An SVG's elements, x scaled from seconds over [0, tmax]."""

    def __init__(self, tmax):
        self.tmax = tmax
        self.out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
                    'font-family="sans-serif" font-size="12">' % (W, H),
                    '<rect width="100%" height="100%" fill="white"/>']

    def x(self, t):
        return LEFT + (W - LEFT - RIGHT) * t / self.tmax

    def panel(self, y0, ymax, series, title, unit, marks):
        """A panel at y0 with axis 0..ymax: (color, dashed, label, [(t, v)]) series
        and (t, color) vertical marks."""
        def y(v):
            return y0 + PANEL_H - PANEL_H * v / ymax
        self.frame(y0, ymax, y, title, unit)
        for color, dashed, _, pts in series:
            if len(pts) > 1:
                d = " ".join("%.1f,%.1f" % (self.x(t), y(v)) for t, v in pts)
                self.out.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="2" %s/>'
                                % (d, color, dash(dashed)))
        lx = LEFT + 10
        for color, dashed, label, _ in series:
            self.out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2" %s/>'
                            % (lx, y0 + 12, lx + 20, y0 + 12, color, dash(dashed)))
            self.out.append('<text x="%d" y="%d">%s</text>' % (lx + 24, y0 + 16, label))
            lx += 30 + 7 * len(label)
        for t, color in marks:
            self.out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="%s" '
                            'stroke-dasharray="2,3"/>' % (self.x(t), y0, self.x(t), y0 + PANEL_H, color))

    def frame(self, y0, ymax, y, title, unit):
        """The panel's title, box, axis figures, time ticks and unit."""
        self.out.append('<text x="%d" y="%d" font-weight="bold">%s</text>' % (LEFT, y0 - 8, title))
        self.out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>'
                        % (LEFT, y0, W - LEFT - RIGHT, PANEL_H))
        for k in range(5):
            v = ymax * k / 4
            self.out.append('<text x="%d" y="%.1f" text-anchor="end">%.0f</text>' % (LEFT - 4, y(v) + 4, v))
        for t in ticks(self.tmax):
            x = self.x(t)
            self.out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#888"/>'
                            % (x, y0 + PANEL_H, x, y0 + PANEL_H + 4))
            self.out.append('<text class="tick" x="%.1f" y="%.1f" text-anchor="middle">%s</text>'
                            % (x, y0 + PANEL_H + 15, tick_label(t)))
        mid = y0 + PANEL_H / 2
        self.out.append('<text x="12" y="%.1f" transform="rotate(-90 12 %.1f)">%s</text>' % (mid, mid, unit))


def plot(snapshot, adapt, path):
    """Writes the SVG of the run to path (nothing without a timeline); whether it did."""
    tl = json_lines(os.path.join(snapshot.work, "timeline.jsonl"))
    if not tl:
        return False
    tmax = max(max(x["t"] for x in tl), 1)
    bmax = max([x.get(k) or 0 for x in tl for k in ("app_mbps", "truth_ac_mbps", "ac_mbps")] + [1]) * 1.1
    rtrue = 4 * snapshot.delay
    rmax = max([x["ac_rtt_ms"] for x in tl if x.get("ac_rtt_ms")] + [rtrue, 1]) * 1.3

    def pick(k):
        return [(x["t"], x[k]) for x in tl if x.get(k) is not None]
    marks = [(t, "#c00" if who == "lab" else "#080") for t, who, text in snapshot.events()
             if who == "lab" or text.startswith("APPLIED")]
    svg = Svg(tmax)
    svg.panel(TOP + 10, bmax, [
        ("#000", True, "A->C available (truth: tc, cross traffic)", pick("truth_ac_mbps")),
        ("#1f77b4", False, "A->C as wrenvnet plans with it (Wren)", pick("ac_mbps")),
        ("#ff7f0e", False, "application throughput (iperf3)", pick("app_mbps"))],
        "lab, adaptation %s: bandwidth (red: lab events, green: adaptations)" % adapt, "Mbit/s", marks)
    svg.panel(2 * TOP + PANEL_H + 10, rmax, [
        ("#000", True, "A->C RTT (truth: delay lines)", [(0, rtrue), (tmax, rtrue)]),
        ("#1f77b4", False, "A->C min RTT (Wren)", pick("ac_rtt_ms"))], "RTT", "ms", marks)
    svg.out.append('<text x="%d" y="%d" text-anchor="middle">seconds since the application started</text>'
                   % (W / 2, H - 4))
    svg.out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(svg.out))
    return True
