// What the TensorFlow.js scripts under tests/tfjs share: a quiet TF.js on a little-endian host, the
// float32 array codec, and running a batch of cases from a job to a result.
//
// A job is {"cases": [...]}; a result {"backend", "version", "results": [...]}, one entry per
// case in the same order. A whole batch runs in one process because loading Node and TF.js costs
// far more than any single case, and a failing case yields {"error": "..."} while the batch goes
// on. Arrays travel as {"dtype": "float32", "shape": [...], "b64": "..."} (little-endian float32
// bytes) so that no value is rounded through decimal text.
'use strict';

const fs = require('fs');
const os = require('os');
const tf = require('@tensorflow/tfjs');

// stdout may carry the JSON result, which a caller parses; TF.js's informational logging must not
// mix into it.
console.log = console.error;
// The cpu backend warns once that tfjs-node would be faster; PROD silences only such notices.
tf.env().set('PROD', true);

if (os.endianness() !== 'LE') {
    throw new Error('the array codec assumes a little-endian host');
}

function decode(a) {
    if (a.dtype !== 'float32') {
        throw new Error(`unsupported dtype ${a.dtype}: the codec carries float32 only`);
    }
    const buf = Buffer.from(a.b64, 'base64');
    // Copy into a fresh, aligned ArrayBuffer: a Buffer may be a view at an odd offset of a pool.
    const values = new Float32Array(buf.byteLength / 4);
    new Uint8Array(values.buffer).set(buf);
    return tf.tensor(values, a.shape, 'float32');
}

function encode(t) {
    const values = t.dataSync();
    if (!(values instanceof Float32Array)) {
        throw new Error(`cannot encode a ${t.dtype} tensor`);
    }
    return {
        dtype: 'float32',
        shape: t.shape,
        b64: Buffer.from(values.buffer, values.byteOffset, values.byteLength).toString('base64'),
    };
}

let uniqueId = 0;
function uniqueName(prefix) {
    uniqueId += 1;
    return `${prefix}_${uniqueId}`;
}

// Reads the job from jobPath (stdin when it is absent or '-'), runs each case through `run` on
// the cpu backend, and writes the result to resultPath (stdout when it is absent).
async function runJob(jobPath, resultPath, run) {
    const text = fs.readFileSync(jobPath && jobPath !== '-' ? jobPath : 0, 'utf8');
    const job = JSON.parse(text);
    await tf.setBackend('cpu');
    const results = [];
    for (const c of job.cases) {
        try {
            results.push(await run(c));
        } catch (err) {
            results.push({error: `${err.name}: ${err.message}`});
        } finally {
            // Variables outlive tidy scopes; dropping them keeps one case from seeing another's.
            tf.disposeVariables();
        }
    }
    const out = JSON.stringify({backend: tf.getBackend(), version: tf.version.tfjs, results});
    if (resultPath) {
        fs.writeFileSync(resultPath, out);
    } else {
        process.stdout.write(out);
    }
}

// Runs a script's async main; a failure of the whole script (not of one case) goes to stderr
// with exit status 1, which the Python side reports.
function runMain(main) {
    main().catch((err) => {
        process.stderr.write(`${err.stack || err}\n`);
        process.exit(1);
    });
}

// The whole of a reference script, `node SCRIPT [JOB.json | -] [RESULT.json]`, whose cases go to
// runners[case.kind].
function runReference(runners) {
    runMain(async () => {
        const [jobPath, resultPath] = process.argv.slice(2);
        await runJob(jobPath, resultPath, (c) => {
            const runner = runners[c.kind];
            if (!runner) {
                return {error: `unknown case kind ${JSON.stringify(c.kind)}`};
            }
            return runner(c);
        });
    });
}

module.exports = {tf, decode, encode, uniqueName, runJob, runMain, runReference};
