// The last system calls of a small received file (its write, fchmod, futimes and fsync), made
// by one worker thread instead of the event loop's. A receiver of small files was bound by its
// event loop's thread (84-94% busy through 20,000 x 1 KiB files), and these calls were ~75 us
// of its ~320 us per file: pwritev 42, fchmod 7, futimes 5, the fsync's trip into the pool ~20.
// The jobs a tick makes go over in one message, and their answers come back likewise, so the
// wake-up of a thread (what every trip through the pool costs here) is paid once per batch.
// The worker's fsyncs go to the same thread pool (one per process), many at once as before.
// Measured (20,000 x 1 KiB, one receiver per run, 11 alternating pairs): the main thread's CPU
// 73% -> 58% of the run; the run's time 0.93x (0.88-1.09); with fsync made a no-op
// (eatmydata) 5.5-6.5 s -> 4.1-4.9 s: past this, the fsyncs themselves bound the rate here.
import { Worker } from 'node:worker_threads';

/** A file descriptor's finish: `data` written at its position, attributes set, fsync. */
export interface FinishJob {
  fd: number;
  data: { parts: readonly Buffer[]; position: number };
  /** Permission bits, when the sender gave them. */
  mode?: number | undefined;
  /** Modification time, when the sender gave it; the access time becomes now. */
  mtimeMs?: number | undefined;
}

/** A job as it crosses to the worker: its data is a range of the batch's one buffer. */
interface WireJob {
  id: number;
  fd: number;
  at: number;
  length: number;
  position: number;
  mode: number | undefined;
  mtimeMs: number | undefined;
}

interface WireOutcome {
  id: number;
  error?: { message: string; code?: string; syscall?: string };
}

/**
 * The worker's code, run from its source text (so that both builds, tsc's modules and the
 * bundled CLI, carry it without a file of its own to find). Self-contained: it sees no module
 * scope. Calls that touch only memory run synchronously; the fsync goes to the pool.
 */
function workerMain(): void {
  const { parentPort } = require('node:worker_threads') as typeof import('node:worker_threads');
  const fs = require('node:fs') as typeof import('node:fs');
  if (parentPort === null) return;
  const port = parentPort;
  const outbox: WireOutcome[] = [];
  const answer = (outcome: WireOutcome) => {
    if (outbox.length === 0) setImmediate(() => port.postMessage(outbox.splice(0)));
    outbox.push(outcome);
  };
  const failed = (id: number, err: NodeJS.ErrnoException) =>
    answer({ id, error: { message: err.message, code: err.code, syscall: err.syscall } });
  port.on('message', ({ jobs, data }: { jobs: WireJob[]; data: ArrayBuffer }) => {
    const bytes = new Uint8Array(data);
    for (const job of jobs) {
      try {
        for (let done = 0; done < job.length; ) {
          done += fs.writeSync(job.fd, bytes, job.at + done, job.length - done, job.position + done);
        }
        if (job.mode !== undefined) fs.fchmodSync(job.fd, job.mode & 0o777);
        if (job.mtimeMs !== undefined) fs.futimesSync(job.fd, new Date(), new Date(job.mtimeMs));
      } catch (err) {
        failed(job.id, err as NodeJS.ErrnoException);
        continue;
      }
      fs.fsync(job.fd, (err) => (err ? failed(job.id, err) : answer({ id: job.id })));
    }
  });
}

/** An error from the worker, as node:fs would have thrown it here. */
function rebuilt(error: NonNullable<WireOutcome['error']>): NodeJS.ErrnoException {
  return Object.assign(new Error(error.message), { code: error.code, syscall: error.syscall });
}

interface Waiting {
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** The worker, and the jobs sent to it that it has not answered. */
interface Running {
  worker: Worker;
  sent: Map<number, Waiting>;
}

class FileJobs {
  #running: Running | undefined;
  #nextId = 0;
  #queued: Array<{ job: FinishJob; id: number; waiting: Waiting }> = [];

  run(job: FinishJob): Promise<void> {
    const id = this.#nextId++;
    return new Promise<void>((resolve, reject) => {
      if (this.#queued.length === 0) setImmediate(() => this.#flush());
      this.#queued.push({ job, id, waiting: { resolve, reject } });
    });
  }

  #flush(): void {
    const queued = this.#queued.splice(0);
    let total = 0;
    for (const { job } of queued) for (const part of job.data.parts) total += part.length;
    // One buffer for the batch, moved to the worker, not cloned: the parts are views of socket
    // reads, and a view would carry its whole read across.
    const data = new ArrayBuffer(total);
    const bytes = new Uint8Array(data);
    let at = 0;
    const jobs: WireJob[] = queued.map(({ job, id }) => {
      const start = at;
      for (const part of job.data.parts) {
        bytes.set(part, at);
        at += part.length;
      }
      const { fd, mode, mtimeMs } = job;
      return { id, fd, at: start, length: at - start, position: job.data.position, mode, mtimeMs };
    });
    let running: Running;
    try {
      running = this.#started();
      running.worker.postMessage({ jobs, data }, [data]);
    } catch (err) {
      // No thread could start: these jobs fail, as a failed fsync would, and leave no write behind.
      for (const { waiting } of queued) waiting.reject(err);
      return;
    }
    for (const { id, waiting } of queued) running.sent.set(id, waiting);
    running.worker.ref();
  }

  #started(): Running {
    if (this.#running !== undefined) return this.#running;
    const worker = new Worker(`(${workerMain.toString()})()`, { eval: true });
    const running: Running = { worker, sent: new Map() };
    const { sent } = running;
    worker.on('message', (outcomes: WireOutcome[]) => {
      for (const { id, error } of outcomes) {
        const waiting = sent.get(id);
        sent.delete(id);
        if (error === undefined) waiting?.resolve();
        else waiting?.reject(rebuilt(error));
      }
      // An idle worker does not keep the process alive.
      if (sent.size === 0) worker.unref();
    });
    // Only the jobs this worker held fail with it: its thread is gone, so none of them writes
    // later into a descriptor its owner has closed meanwhile. The next job starts another.
    const lost = (err: Error) => {
      if (this.#running === running) this.#running = undefined;
      for (const waiting of sent.values()) waiting.reject(err);
      sent.clear();
    };
    worker.on('error', lost);
    worker.on('exit', (code) => lost(new Error(`the file worker stopped (exit code ${code})`)));
    this.#running = running;
    return running;
  }
}

/** The process's one worker for file finishes, started at its first job. */
export const fileJobs = new FileJobs();
