/**
 * One trial's tasks shared by several run-multienv processes (on one machine or several)
 * through a Redis queue (BullMQ), `run-multienv --queue redis://host:6379`.
 *
 * - The queue is the trial's: its name comes from the trial path (`osworld/<action space>/
 *   <observation type>/<model>/<trial id>`, or --queue-name), and a job's id is its task key
 *   `<domain>/<task id>`, so a task is in the queue at most once and putting it in again is a
 *   no-op. Every process, when it starts, puts in the tasks of its list that have no result.txt
 *   (as a plain run would redo them): a job that ended without a result (failed) or whose
 *   result.txt is gone is put back; a job waiting or running elsewhere is left alone.
 * - Every process takes jobs with as many workers as it has envs (--num-envs); a worker holds
 *   one task at a time, so each process runs at most --num-envs tasks at once.
 * - A taken job is locked for `lockMs` and its lock renewed every lockMs/3. A process that dies
 *   (even SIGKILL) stops renewing; BullMQ's stalled-job check (run by every process) puts its
 *   jobs back in the queue, and another process redoes them from scratch (the result writer
 *   clears an unfinished task's folder, exactly as a rerun would). A process that finds its
 *   lock taken stops that task and writes nothing more into its folder.
 * - A job completes only after the task's result.txt is written; a task that ended without a
 *   result (infra_error, timeout) fails its job, and the next process to start puts it back. A
 *   job taken whose task already has its result.txt (written just before its claim ended) is
 *   completed without running the task again.
 * - A process ends when no job is waiting or running anywhere (it keeps polling while other
 *   processes still run tasks, so it can take over those of a process that dies).
 * - The processes must share the task set (list, domain, excluded tags, task files): its hash
 *   is kept with the queue and a process with another one is refused while the queue has work.
 */
import os from 'node:os';
import { Queue, Worker, createBunRedisClient, type Job, type JobType } from 'bullmq';
import { isFinished, taskDir, type TrialPath } from '../results/layout.ts';
import { readTaskStatus, type TaskStatus } from '../results/status.ts';
import type { InvalidTask, LoadedTask, TaskRef } from '../tasks/load-tasks.ts';
import { parseRedisUrl, redactRedisUrl, RespClient, type RedisTarget, type RespValue } from './resp-client.ts';
import type { SharedQueue, TakenTask, TaskRecord, TaskSource } from './run-trial.ts';
import { TRIAL_TOKEN_FILE } from './shared-trial.ts';

export interface RedisQueueOptions {
  /** redis://[user:password@]host[:port][/db] (rediss:// for TLS) */
  url: string;
  /** The queue's name (defaultQueueName of the trial). */
  name: string;
  trial: TrialPath;
  /** A taken task whose process stops renewing its lock for this long goes back to the queue. */
  lockMs: number;
  /** Pause between looks at an empty queue while other processes still run tasks. */
  pollMs?: number;
  /** Times a task may go back to the queue after its process died before it fails for good (the next start puts it back). */
  maxStalledCount?: number;
  /** sha256 of the task set (run-config.ts taskSetHash): processes of one queue must agree. */
  taskSetHash?: string;
  /** The trial folder's token (shared-trial.ts sharedTrialToken): processes of one queue must share the folder. */
  trialToken?: string;
  log: (line: string) => void;
  /** This process in logs and job results (default `<hostname>-<pid>`). */
  id?: string;
}

export interface TaskJobData {
  domain: string;
  id: string;
}

export interface TaskJobResult {
  outcome: TaskStatus;
  score: number | null;
  /** The process that ran it (`<hostname>-<pid>`). */
  by: string;
}

/** The queue of a trial: `osworld/<action space>/<observation type>/<model>/<trial id>` (BullMQ forbids ':'). */
export function defaultQueueName(t: TrialPath): string {
  return ['osworld', t.actionSpace, t.observationType, t.model, t.trialId].map((p) => p.replace(/:/g, '_')).join('/');
}

/** A task's job id in its trial's queue. */
export const jobIdOf = (ref: TaskRef): string => `${ref.domain}/${ref.id}`;

export class QueueUnavailableError extends Error {
  override name = 'QueueUnavailableError';
}

/** The task set differs from the one the queue's tasks came from. */
export class QueueMismatchError extends Error {
  override name = 'QueueMismatchError';
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const msg = (err: unknown): string => (err instanceof Error ? err.message : String(err));

interface Claim {
  job: Job<TaskJobData, TaskJobResult>;
  token: string;
  lost: AbortController;
  timer: NodeJS.Timeout;
}

/**
 * Job counts that mean "work left somewhere": waiting, paused, delayed, prioritized or running.
 * ('paused' is the list a paused queue keeps its waiting jobs in; BullMQ's getCounts script
 * counts it though its JobType no longer names it.)
 */
const OPEN_STATES = ['active', 'wait', 'paused', 'delayed', 'prioritized', 'waiting-children'] as unknown as JobType[];

export class RedisTaskQueue implements SharedQueue {
  readonly id: string;
  readonly target: RedisTarget;
  private queue: Queue<TaskJobData, TaskJobResult> | null = null;
  private worker: Worker<TaskJobData, TaskJobResult> | null = null;
  private meta: RespClient | null = null;
  private readonly clients: { disconnect(): void }[] = [];
  private readonly claims = new Map<string, Claim>();
  private seq = 0;
  private closed = false;
  /** abandon() was called: no task is taken any more. */
  private stopping = false;

  constructor(private readonly o: RedisQueueOptions) {
    this.id = o.id ?? `${os.hostname()}-${process.pid}`;
    this.target = parseRedisUrl(o.url);
  }

  get where(): string {
    return `${this.o.name} at ${redactRedisUrl(this.o.url)}`;
  }

  /** Connects (a clear error when Redis does not answer) and checks the task set (QueueMismatchError). */
  async connect(): Promise<void> {
    if (this.meta) return;
    const meta = new RespClient(this.target, { connectTimeoutMs: 5000 });
    try {
      await meta.connect();
      const pong = await meta.send<RespValue>('PING', []);
      if (pong !== 'PONG') throw new Error(`PING answered ${JSON.stringify(pong)}`);
    } catch (err) {
      meta.close();
      throw new QueueUnavailableError(`cannot reach the Redis queue at ${redactRedisUrl(this.o.url)}: ${msg(err)}`);
    }
    this.meta = meta;
    const client = (): ReturnType<typeof createBunRedisClient> => {
      const c = createBunRedisClient(new RespClient(this.target));
      this.clients.push(c);
      return c;
    };
    this.queue = new Queue<TaskJobData, TaskJobResult>(this.o.name, { connection: client() });
    this.worker = new Worker<TaskJobData, TaskJobResult>(this.o.name, null, {
      connection: client(),
      autorun: false,
      lockDuration: this.o.lockMs,
      stalledInterval: Math.max(500, Math.round(this.o.lockMs / 2)),
      maxStalledCount: this.o.maxStalledCount ?? 3,
    });
    // Connection trouble is retried by BullMQ's adapter; say so without crashing.
    this.queue.on('error', (err: Error) => this.o.log(`queue ${this.o.name}: ${err.message}`));
    this.worker.on('error', (err: Error) => this.o.log(`queue ${this.o.name}: ${err.message}`));
    await this.queue.waitUntilReady();
    await this.worker.waitUntilReady();
    await this.checkTaskSet();
    await this.checkTrial();
  }

  private get q(): Queue<TaskJobData, TaskJobResult> {
    if (!this.queue) throw new Error('the Redis queue is not connected');
    return this.queue;
  }

  private get w(): Worker<TaskJobData, TaskJobResult> {
    if (!this.worker) throw new Error('the Redis queue is not connected');
    return this.worker;
  }

  private get m(): RespClient {
    if (!this.meta) throw new Error('the Redis queue is not connected');
    return this.meta;
  }

  /** A key of this project's own, beside BullMQ's keys of the queue. */
  private key(name: 'taskset' | 'seeding' | 'trial'): string {
    return `bull:${this.o.name}:osworld-${name}`;
  }

  /** Jobs waiting or running anywhere (0: the trial's queue is drained). */
  async openJobs(): Promise<number> {
    const counts = await this.q.getJobCounts(...OPEN_STATES);
    return Object.values(counts).reduce((a, b) => a + b, 0);
  }

  /** The task set of the queue's jobs must be this process's (else two lists would mix in one trial). */
  private async checkTaskSet(): Promise<void> {
    const hash = this.o.taskSetHash;
    if (!hash) return;
    await this.checkSameAs('taskset', hash, {
      refusal: (theirs, open) =>
        `queue ${this.where} holds ${open} task(s) of another task set (hash ${theirs.slice(0, 12)}, this run's ${hash.slice(0, 12)}): every process of one queue needs the same --test_all_meta_path, --domain, --exclude-tag and task files (or use another --queue-name)`,
      adopted: (theirs) =>
        `queue ${this.o.name}: the task set changed since the queue's last tasks (hash ${theirs.slice(0, 12)} -> ${hash.slice(0, 12)}); the queue was drained, so it now follows this run's`,
    });
  }

  /**
   * The queue's tasks must be written into this process's trial folder: two unrelated runs on one
   * Redis whose default queue names collide (same model and trial id, another --result_dir) would
   * otherwise split each other's tasks.
   */
  private async checkTrial(): Promise<void> {
    const token = this.o.trialToken;
    if (!token) return;
    await this.checkSameAs('trial', token, {
      refusal: (theirs, open) =>
        `queue ${this.where} holds ${open} task(s) of another trial folder (its ${TRIAL_TOKEN_FILE} token ${theirs}, this one's ${token}): processes of one queue must share one trial folder (--result_dir on a shared file system); for an unrelated run give another --queue-name`,
      adopted: (theirs) => `queue ${this.o.name}: it served another trial folder before (token ${theirs}); it was drained, so it now serves this one (${token})`,
    });
  }

  /**
   * The value the queue keeps under `name` must be this process's: the first process sets it; a
   * process with another one is refused while the queue has work, and a drained queue takes it.
   */
  private async checkSameAs(
    name: 'taskset' | 'trial',
    value: string,
    say: { refusal: (theirs: string, open: number) => string; adopted: (theirs: string) => string },
  ): Promise<void> {
    const key = this.key(name);
    if ((await this.m.send<RespValue>('SET', [key, value, 'NX'])) === 'OK') return;
    const theirs = String(await this.m.get(key));
    if (theirs === value) return;
    const open = await this.openJobs();
    if (open > 0) throw new QueueMismatchError(say.refusal(theirs, open));
    this.o.log(say.adopted(theirs));
    await this.m.send('SET', [key, value]);
  }

  /**
   * Runs `fn` while this process holds the queue's seeding lock. Seeding checks which jobs exist, then adds
   * the missing ones: two processes joining at once would both find a task missing (BullMQ drops the
   * second add of a job id, but both would report it added).
   */
  private async seeding<T>(fn: () => Promise<T>): Promise<T> {
    const key = this.key('seeding');
    // held for at most a minute, so a process that dies while seeding does not block the queue for good
    while ((await this.m.send<RespValue>('SET', [key, this.id, 'NX', 'PX', '60000'])) !== 'OK') await sleep(50);
    try {
      return await fn();
    } finally {
      if ((await this.m.get(key)) === this.id) await this.m.send('DEL', [key]);
    }
  }

  /** Puts the unfinished tasks into the queue (SharedQueue), then hands out jobs. */
  async open(pending: LoadedTask[], load: (ref: TaskRef) => LoadedTask | InvalidTask): Promise<TaskSource> {
    await this.connect();
    await this.seeding(() => this.seed(pending));
    await this.w.startStalledCheckTimer();
    return { take: (worker) => this.take(worker, load), abandon: () => this.abandon() };
  }

  /** Adds the tasks the queue lacks and puts back those that ended without a result. */
  private async seed(pending: LoadedTask[]): Promise<void> {
    const fresh: { name: string; data: TaskJobData; opts: { jobId: string; attempts: number; removeOnComplete: false; removeOnFail: false } }[] = [];
    let requeued = 0;
    let present = 0;
    for (const t of pending) {
      const jobId = jobIdOf(t);
      const job = await this.q.getJob(jobId);
      if (!job) {
        fresh.push({ name: 'task', data: { domain: t.domain, id: t.id }, opts: { jobId, attempts: 1, removeOnComplete: false, removeOnFail: false } });
        continue;
      }
      const state = await job.getState();
      // A job completes only after its result.txt is written: completed without one means the
      // result was removed since (redo it, as a rerun would). Failed: it ended without a result.
      if (state === 'failed' || (state === 'completed' && !isFinished(this.o.trial, t))) {
        try {
          await job.retry(state);
          requeued++;
        } catch {
          present++; // another process put it back first, or it moved on meanwhile
        }
      } else {
        present++;
      }
    }
    if (fresh.length) await this.q.addBulk(fresh);
    this.o.log(`queue ${this.where}: joined as ${this.id}; ${fresh.length} task(s) added, ${requeued} put back (ended without a result), ${present} already queued or running`);
  }

  private async take(worker: number, load: (ref: TaskRef) => LoadedTask | InvalidTask): Promise<TakenTask | null> {
    const poll = this.o.pollMs ?? 500;
    let failingSince = 0;
    for (;;) {
      if (this.closed || this.stopping) return null;
      let job: Job<TaskJobData, TaskJobResult> | undefined;
      const token = `${this.id}-${worker}-${++this.seq}`;
      try {
        job = await this.w.getNextJob(token, { block: false });
        if (!job) {
          if ((await this.openJobs()) === 0) return null;
          failingSince = 0;
          await sleep(poll);
          continue;
        }
      } catch (err) {
        // Redis away: BullMQ's client reconnects; give up after a while without it.
        failingSince ||= Date.now();
        if (Date.now() - failingSince > Math.max(60_000, 4 * this.o.lockMs)) throw new QueueUnavailableError(`lost the Redis queue ${this.where}: ${msg(err)}`);
        this.o.log(`[env ${worker}] queue ${this.o.name}: ${msg(err)}; retrying`);
        await sleep(Math.min(5000, poll * 4));
        continue;
      }
      if (this.stopping) {
        // abandon() ran while this take was in flight: the job goes straight back.
        await job.moveToWait(token).catch(() => 0);
        return null;
      }
      const ref: TaskRef = { domain: job.data.domain, id: job.data.id };
      const loaded = load(ref);
      if ('error' in loaded) {
        this.o.log(`[env ${worker}] queue: ${job.id} is not a valid task here (${loaded.error}); failed`);
        await job.moveToFailed(new Error(`invalid task on ${this.id}: ${loaded.error}`), token, false).catch(() => {});
        continue;
      }
      if (isFinished(this.o.trial, ref)) {
        // Its result.txt was written just before its claim ended (handed back, or its process was
        // presumed dead): the task is done, and running it again would clear a finished result.
        const status = readTaskStatus(taskDir(this.o.trial, ref));
        this.o.log(`[env ${worker}] queue: ${job.id} already has its result.txt; completed without running it again`);
        await job.moveToCompleted({ outcome: status?.status ?? 'success', score: status?.score ?? null, by: this.id }, token, false).catch(() => {});
        continue;
      }
      return this.claim(worker, job, token, loaded);
    }
  }

  private claim(worker: number, job: Job<TaskJobData, TaskJobResult>, token: string, task: LoadedTask): TakenTask {
    const jobId = String(job.id);
    const lost = new AbortController();
    let renewed = Date.now();
    const lose = (why: string): void => {
      if (lost.signal.aborted) return;
      this.o.log(`[env ${worker}] queue: lost ${jobId}: ${why}`);
      lost.abort(why);
    };
    const timer = setInterval(() => {
      job.extendLock(token, this.o.lockMs).then(
        (ok) => {
          if (Number(ok) === 1) renewed = Date.now();
          else lose('its lock was taken over (this process was presumed dead)');
        },
        (err: unknown) => {
          if (Date.now() - renewed > this.o.lockMs) lose(`its lock could not be renewed for ${this.o.lockMs / 1000} s: ${msg(err)}`);
        },
      );
    }, Math.max(100, Math.round(this.o.lockMs / 3)));
    const claim: Claim = { job, token, lost, timer };
    this.claims.set(jobId, claim);
    const takeover = job.stalledCounter > 0 ? ` (back in the queue after ${job.stalledCounter} stalled run(s))` : job.attemptsStarted > 1 ? ` (run ${job.attemptsStarted})` : '';
    this.o.log(`[env ${worker}] queue: took ${jobId}${takeover}`);
    return {
      task,
      lost: lost.signal,
      finished: (record) => this.finish(worker, claim, record),
    };
  }

  private async finish(worker: number, claim: Claim, record: TaskRecord): Promise<void> {
    clearInterval(claim.timer);
    const jobId = String(claim.job.id);
    this.claims.delete(jobId);
    if (claim.lost.signal.aborted) return;
    try {
      if (record.status === 'scored') {
        await claim.job.moveToCompleted({ outcome: record.outcome, score: record.score ?? null, by: this.id }, claim.token, false);
      } else {
        await claim.job.moveToFailed(new Error(`${record.outcome} on ${this.id}: ${record.error ?? 'no result'}`), claim.token, false);
      }
    } catch (err) {
      this.o.log(`[env ${worker}] queue: could not mark ${jobId} ${record.status === 'scored' ? 'completed' : 'failed'}: ${msg(err)}`);
    }
  }

  /**
   * Hands this process's running tasks back to the queue now (SIGINT / SIGTERM), instead of
   * after their locks expire: they stop writing (their `lost` signal) and wait for another process.
   */
  async abandon(): Promise<void> {
    this.stopping = true;
    const claims = [...this.claims.values()];
    this.claims.clear();
    for (const c of claims) {
      clearInterval(c.timer);
      c.lost.abort('this process is stopping');
    }
    await Promise.all(claims.map((c) => c.job.moveToWait(c.token).catch(() => 0)));
    if (claims.length) this.o.log(`queue ${this.o.name}: handed ${claims.length} running task(s) back: ${claims.map((c) => c.job.id).join(', ')}`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.claims.values()) clearInterval(c.timer);
    await this.worker?.close().catch(() => {});
    await this.queue?.close().catch(() => {});
    for (const c of this.clients) {
      try {
        c.disconnect();
      } catch {
        /* closed */
      }
    }
    this.meta?.close();
  }
}
