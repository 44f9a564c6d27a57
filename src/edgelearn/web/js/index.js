// The start page: pick a backend, see what the server offers.
import { $, el, formatBytes, getJSON, setupBackend, tf, timed } from './common.js';

await setupBackend($('#backend'));
try {
  const [info, { models }] = await timed('ask the server',
    () => Promise.all([getJSON('/api/info'), getJSON('/api/models')]));
  $('#server-info').textContent = `edgelearn ${info.edgelearn}, TensorFlow.js ${tf.version.tfjs}; `
    + `${models.length} model(s) on the server; uploads up to ${formatBytes(info.max_upload_bytes)}`
    + `${info.allow_overwrite ? ', replacing models allowed' : ''}. `;
  $('#server-info').append('The API: ', el('a', { href: '/openapi.json' }, '/openapi.json'),
    ' (see docs/playground.md).');
} catch (error) {
  $('#server-info').textContent = `The server did not answer: ${error.message}`;
}
document.body.dataset.ready = 'true';
