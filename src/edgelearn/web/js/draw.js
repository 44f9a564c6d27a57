// A canvas to draw a digit on, turned into a 28x28 input the way MNIST digits were made: the
// stroke's bounding box scaled to fit 20x20, then centred by its centre of mass in 28x28.

export class DigitPad {
  constructor(canvas, onDone) {
    this.canvas = canvas;
    this.g = canvas.getContext('2d', { willReadFrequently: true });
    this.onDone = onDone;
    this.drawing = false;
    this.clear();
    canvas.addEventListener('pointerdown', (e) => {
      this.drawing = true;
      canvas.setPointerCapture(e.pointerId);
      this.g.beginPath();
      this.g.moveTo(...this.point(e));
    });
    canvas.addEventListener('pointermove', (e) => {
      if (!this.drawing) return;
      this.g.lineTo(...this.point(e));
      this.g.stroke();
    });
    const end = () => {
      if (!this.drawing) return;
      this.drawing = false;
      this.onDone(this.pixels());
    };
    canvas.addEventListener('pointerup', end);
    canvas.addEventListener('pointerleave', end);
  }

  point(e) {
    const box = this.canvas.getBoundingClientRect();
    return [(e.clientX - box.left) * (this.canvas.width / box.width),
      (e.clientY - box.top) * (this.canvas.height / box.height)];
  }

  clear() {
    const { g, canvas } = this;
    g.fillStyle = 'black';
    g.fillRect(0, 0, canvas.width, canvas.height);
    g.strokeStyle = 'white';
    g.lineWidth = canvas.width / 14;
    g.lineCap = g.lineJoin = 'round';
  }

  // 784 floats in [0, 1], row-major, or null when nothing is drawn.
  pixels() {
    const { width, height } = this.canvas;
    const data = this.g.getImageData(0, 0, width, height).data;
    let [x0, y0, x1, y1] = [width, height, -1, -1];
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        if (data[4 * (y * width + x)] > 20) {
          x0 = Math.min(x0, x); x1 = Math.max(x1, x);
          y0 = Math.min(y0, y); y1 = Math.max(y1, y);
        }
      }
    }
    if (x1 < 0) return null;
    const side = Math.max(x1 - x0 + 1, y1 - y0 + 1);
    const scale = 20 / side;
    const small = document.createElement('canvas');
    small.width = small.height = 28;
    const s = small.getContext('2d', { willReadFrequently: true });
    s.fillStyle = 'black';
    s.fillRect(0, 0, 28, 28);
    const w = (x1 - x0 + 1) * scale;
    const h = (y1 - y0 + 1) * scale;
    s.drawImage(this.canvas, x0, y0, x1 - x0 + 1, y1 - y0 + 1, (28 - w) / 2, (28 - h) / 2, w, h);
    const small28 = s.getImageData(0, 0, 28, 28).data;
    const values = Array.from({ length: 784 }, (_, i) => small28[4 * i] / 255);
    // Shift so the centre of mass lands in the middle, as in MNIST.
    let [mass, cx, cy] = [0, 0, 0];
    values.forEach((v, i) => { mass += v; cx += v * (i % 28); cy += v * Math.floor(i / 28); });
    const dx = Math.round(13.5 - cx / mass);
    const dy = Math.round(13.5 - cy / mass);
    const shifted = new Float32Array(784);
    values.forEach((v, i) => {
      const x = (i % 28) + dx;
      const y = Math.floor(i / 28) + dy;
      if (x >= 0 && x < 28 && y >= 0 && y < 28) shifted[y * 28 + x] = v;
    });
    return shifted;
  }
}
