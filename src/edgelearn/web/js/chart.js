// A small line chart on a <canvas>: several named series of (x, y) points, redrawn on demand.
// Enough for live loss/accuracy curves without a charting library.

export class LineChart {
  // series: [{name, color, dots?: boolean}]; yMax: fixed top of the y axis (null: from data).
  constructor(canvas, { title, series, yMax = null, xLabel = 'batches' }) {
    this.canvas = canvas;
    this.title = title;
    this.xLabel = xLabel;
    this.series = series.map((s) => ({ ...s, points: [] }));
    this.yMax = yMax;
    this.pending = false;
  }

  clear() {
    for (const s of this.series) s.points = [];
    this.draw();
  }

  add(name, x, y) {
    if (!Number.isFinite(y)) return;
    this.series.find((s) => s.name === name).points.push([x, y]);
    // Many batches can end between two frames: draw once per frame.
    if (!this.pending) {
      this.pending = true;
      requestAnimationFrame(() => { this.pending = false; this.draw(); });
    }
  }

  draw() {
    const { canvas } = this;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 360;
    const height = canvas.clientHeight || 200;
    canvas.width = width * ratio;
    canvas.height = height * ratio;
    const g = canvas.getContext('2d');
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const pad = { left: 40, right: 10, top: 22, bottom: 22 };
    const all = this.series.flatMap((s) => s.points);
    const xMax = Math.max(1, ...all.map((p) => p[0]));
    const yMax = this.yMax ?? Math.max(1e-6, ...all.map((p) => p[1])) * 1.05;
    const sx = (x) => pad.left + (x / xMax) * (width - pad.left - pad.right);
    const sy = (y) => height - pad.bottom - (y / yMax) * (height - pad.top - pad.bottom);

    g.font = '12px sans-serif';
    g.fillStyle = '#333';
    g.fillText(this.title, pad.left, 14);
    g.strokeStyle = '#ccc';
    g.lineWidth = 1;
    g.beginPath();
    for (let i = 0; i <= 4; i++) {
      const y = (yMax * i) / 4;
      g.moveTo(pad.left, sy(y));
      g.lineTo(width - pad.right, sy(y));
      g.fillText(y.toPrecision(2), 2, sy(y) + 4);
    }
    g.stroke();
    const axis = `${this.xLabel}: ${Math.round(xMax)}`;
    g.fillText(axis, width - pad.right - g.measureText(axis).width, height - 6);

    let legendX = pad.left + g.measureText(this.title).width + 16;
    for (const s of this.series) {
      g.strokeStyle = g.fillStyle = s.color;
      g.lineWidth = s.dots ? 2 : 1.2;
      g.beginPath();
      s.points.forEach(([x, y], i) => (i ? g.lineTo(sx(x), sy(y)) : g.moveTo(sx(x), sy(y))));
      g.stroke();
      if (s.dots) for (const [x, y] of s.points) g.fillRect(sx(x) - 3, sy(y) - 3, 6, 6);
      g.fillRect(legendX, 6, 10, 10);
      g.fillStyle = '#333';
      g.fillText(s.name, legendX + 14, 15);
      legendX += g.measureText(s.name).width + 30;
    }
  }
}
