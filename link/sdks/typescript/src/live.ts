import { KalamError } from './errors.js';
import { type ColumnInfo, type Int64Mode, type Row, int64Columns, liveRow } from './types.js';

/** The `type` of a message the server sends a subscription. */
export const MessageType = {
  SubscriptionAck: 'subscription_ack',
  InitialDataBatch: 'initial_data_batch',
  Change: 'change',
  Error: 'error',
} as const;

/** The `change_type` of a `change` message. */
export const ChangeType = {
  Insert: 'insert',
  Update: 'update',
  Delete: 'delete',
} as const;

export interface BatchControl {
  batch_num: number;
  has_more: boolean;
  status: 'loading' | 'loading_batch' | 'ready';
  /** Exact, as a string (the server's JSON number can exceed 2^53). */
  last_seq_id?: string;
}

export type ServerMessage =
  | { type: 'subscription_ack'; subscription_id: string; total_rows?: number; batch_control?: BatchControl; schema: ColumnInfo[] }
  | { type: 'initial_data_batch'; subscription_id: string; rows: Row[]; batch_control: BatchControl }
  | { type: 'change'; subscription_id: string; change_type: 'insert' | 'update' | 'delete'; rows?: Row[]; old_values?: Row[] }
  | { type: 'error'; subscription_id?: string; code: string; message: string };

export type SubscriptionCallback = (message: ServerMessage) => void;

export interface SubscribeOptions {
  /** Initial rows per batch (the client asks for the next ones itself). */
  batchSize?: number;
  /** Only the newest N matching rows as initial rows. */
  lastRows?: number;
  /** Resume after this `_seq`: rows changed since, and deletes. */
  from?: string | bigint;
  /** Aborting ends the subscription. */
  signal?: AbortSignal;
}

/** Ends a subscription; `id` names it (`getLastSeqId(id)`, `unsubscribe(id)`). */
export type Unsubscribe = (() => Promise<void>) & { readonly id: string };

export interface SubscriptionInfo {
  id: string;
  sql: string;
  lastSeqId?: string;
  ready: boolean;
}

/** The part of a WebSocket the client uses (browsers' and `ws`'s both fit). */
interface SocketLike {
  readyState: number;
  binaryType: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code?: number; reason?: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => unknown;

export interface LiveOptions {
  url: string;
  /** A current access token (refreshed by the client when needed). */
  token: (forceFresh: boolean) => Promise<string>;
  int64: Int64Mode;
  WebSocket?: WebSocketConstructor;
  autoReconnect: boolean;
  reconnectDelayMs: number;
  maxReconnectDelayMs: number;
  maxReconnectAttempts: number;
  pingIntervalMs: number;
  /** No message for this long: the socket is taken for dead and replaced. */
  pongTimeoutMs: number;
  events: {
    connect: Set<() => void>;
    disconnect: Set<(reason: string) => void>;
    error: Set<(error: KalamError) => void>;
  };
}

interface Sub {
  id: string;
  sql: string;
  options: SubscribeOptions;
  callback: SubscriptionCallback;
  /** The resume cursor: the highest `_seq` delivered once the initial
   * rows were complete (they come in key order, not `_seq` order). */
  lastSeq?: string;
  /** The highest `_seq` of the initial rows loading now. */
  loadingMax?: string;
  int64: Set<string>;
  ready: boolean;
  /** The connection (epoch) its subscribe message went out on. */
  sentOn?: number;
  /** Settles the pending subscribe call. */
  pending?: { resolve: () => void; reject: (e: KalamError) => void };
}

const OPEN = 1;

function seqMax(a: string | undefined, b: unknown): string | undefined {
  if (typeof b !== 'string' && typeof b !== 'number' && typeof b !== 'bigint') return a;
  const s = String(b);
  if (!/^\d+$/.test(s)) return a;
  return a === undefined || BigInt(s) > BigInt(a) ? s : a;
}

/** The exact digits of `"last_seq_id": <number>` in a raw message. */
function exactLastSeq(text: string): string | undefined {
  return /"last_seq_id"\s*:\s*"?(\d+)/.exec(text)?.[1];
}

async function gunzip(data: ArrayBuffer): Promise<string> {
  const stream = new Blob([data]).stream().pipeThrough(new DecompressionStream('gzip'));
  return new Response(stream).text();
}

async function socketClass(custom?: WebSocketConstructor): Promise<WebSocketConstructor> {
  if (custom) return custom;
  const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (global) return global;
  try {
    const ws = (await import('ws')) as unknown as { WebSocket?: WebSocketConstructor; default?: WebSocketConstructor };
    const ctor = ws.WebSocket ?? ws.default;
    if (ctor) return ctor;
  } catch {
    // reported below
  }
  throw new KalamError(
    'NO_WEBSOCKET',
    'No WebSocket here: on Node.js < 22 install the "ws" package (npm i ws), or pass options.WebSocket',
  );
}

/** One WebSocket shared by every subscription of a client. */
export class LiveConnection {
  private socket?: SocketLike;
  private connecting?: Promise<void>;
  private subs = new Map<string, Sub>();
  private nextId = 1;
  /** Bumped by every new authenticated socket. */
  private epoch = 0;
  private attempts = 0;
  private closedByUser = false;
  private inbox: Promise<void> = Promise.resolve();
  private heardAt = 0;
  private pingTimer?: ReturnType<typeof setInterval>;
  private reconnectTimer?: ReturnType<typeof setTimeout>;
  private authWaiter?: { resolve: () => void; reject: (e: KalamError) => void };

  constructor(private readonly options: LiveOptions) {}

  get connected(): boolean {
    return this.socket?.readyState === OPEN && this.authWaiter === undefined;
  }

  /** Opens and authenticates the socket (once; later calls share it). */
  connect(): Promise<void> {
    if (this.connected) return Promise.resolve();
    this.closedByUser = false;
    this.connecting ??= this.open().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async open(): Promise<void> {
    const Ctor = await socketClass(this.options.WebSocket);
    let token = await this.options.token(false);
    for (let attempt = 0; ; attempt++) {
      try {
        await this.openWith(Ctor, token);
        break;
      } catch (e) {
        // a token the server refuses gets one fresh try
        if (attempt === 0 && e instanceof KalamError && e.code === 'AUTH_FAILED') {
          token = await this.options.token(true);
          continue;
        }
        throw e;
      }
    }
    this.attempts = 0;
    this.epoch++;
    for (const sub of this.subs.values()) this.sendSubscribe(sub);
    for (const f of this.options.events.connect) f();
  }

  private openWith(Ctor: WebSocketConstructor, token: string): Promise<void> {
    const url = this.options.url.replace(/^http/, 'ws').replace(/\/$/, '') + '/v1/ws';
    return new Promise<void>((resolve, reject) => {
      const socket = new Ctor(url) as SocketLike;
      socket.binaryType = 'arraybuffer';
      this.socket = socket;
      const timer = setTimeout(() => {
        fail(new KalamError('TIMEOUT', 'The server did not answer the WebSocket authentication'));
        socket.close();
      }, 10_000);
      const fail = (e: KalamError) => {
        clearTimeout(timer);
        this.authWaiter = undefined;
        reject(e);
      };
      this.authWaiter = {
        resolve: () => {
          clearTimeout(timer);
          this.authWaiter = undefined;
          this.startPings();
          resolve();
        },
        reject: fail,
      };
      socket.onopen = () => {
        this.heardAt = Date.now();
        socket.send(
          JSON.stringify({
            type: 'authenticate',
            method: 'jwt',
            token,
            protocol: { serialization: 'json', compression: 'gzip' },
          }),
        );
      };
      socket.onmessage = (ev) => {
        this.heardAt = Date.now();
        const data = ev.data;
        this.inbox = this.inbox
          .then(async () => {
            const text = typeof data === 'string' ? data : await gunzip(data as ArrayBuffer);
            this.onText(text);
          })
          .catch((e) => this.emitError(new KalamError('PROTOCOL', `A server message could not be read: ${e}`)));
      };
      socket.onerror = () => {
        // the close event that follows says what happened
      };
      socket.onclose = (ev) => {
        if (this.socket !== socket) return;
        this.stopPings();
        this.socket = undefined;
        const reason = ev.reason || `closed (${ev.code ?? 'no code'})`;
        if (this.authWaiter) {
          fail(new KalamError('CLOSED', `The WebSocket closed before it was authenticated: ${reason}`));
          return;
        }
        for (const f of this.options.events.disconnect) f(reason);
        this.scheduleReconnect();
      };
    });
  }

  /** Sends a fresh token on the open socket; its subscriptions carry on. */
  reauthenticate(token: string): void {
    if (this.connected) {
      this.socket?.send(JSON.stringify({ type: 'authenticate', method: 'jwt', token }));
    }
  }

  private startPings(): void {
    this.stopPings();
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.heardAt > this.options.pongTimeoutMs) {
        // half-open: nothing heard, not even a pong
        const socket = this.socket;
        this.socket = undefined;
        this.stopPings();
        socket?.close();
        for (const f of this.options.events.disconnect) f('no answer from the server');
        this.scheduleReconnect();
        return;
      }
      if (this.socket?.readyState === OPEN) this.socket.send('{"type":"ping"}');
    }, this.options.pingIntervalMs);
    (this.pingTimer as { unref?: () => void }).unref?.();
  }

  private stopPings(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = undefined;
  }

  private scheduleReconnect(): void {
    for (const sub of this.subs.values()) {
      sub.pending?.reject(new KalamError('CLOSED', 'The connection closed before the subscription was acknowledged'));
      sub.pending = undefined;
    }
    if (this.closedByUser || !this.options.autoReconnect || this.subs.size === 0) return;
    if (this.attempts >= this.options.maxReconnectAttempts) {
      this.emitError(new KalamError('CLOSED', `Gave up reconnecting after ${this.attempts} attempts`));
      return;
    }
    const base = Math.min(this.options.maxReconnectDelayMs, this.options.reconnectDelayMs * 2 ** this.attempts);
    const delay = base / 2 + Math.random() * (base / 2);
    this.attempts++;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect().catch((e) => {
        this.emitError(e instanceof KalamError ? e : new KalamError('NETWORK', String(e)));
        if (!this.socket) this.scheduleReconnect();
      });
    }, delay);
  }

  private emitError(e: KalamError): void {
    for (const f of this.options.events.error) f(e);
  }

  private onText(text: string): void {
    let m: Record<string, unknown>;
    try {
      m = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    switch (m.type) {
      case 'auth_success':
        this.authWaiter?.resolve();
        return;
      case 'auth_error':
        this.authWaiter?.reject(new KalamError('AUTH_FAILED', String(m.message ?? 'authentication failed')));
        return;
      case 'pong':
        return;
    }
    const id = m.subscription_id as string | undefined;
    const sub = id === undefined ? undefined : this.subs.get(id);
    if (m.type === 'error' && !sub) {
      this.emitError(new KalamError(String(m.code ?? 'ERROR'), String(m.message ?? '')));
      return;
    }
    if (!sub) return;
    const control = m.batch_control as BatchControl | undefined;
    if (control) {
      const exact = exactLastSeq(text);
      if (exact) control.last_seq_id = exact;
    }
    switch (m.type) {
      case 'subscription_ack': {
        sub.int64 = int64Columns(m.schema as ColumnInfo[]);
        sub.pending?.resolve();
        sub.pending = undefined;
        sub.callback(m as ServerMessage);
        return;
      }
      case 'initial_data_batch': {
        const rows = ((m.rows as Row[]) ?? []).map((r) => liveRow(r, sub.int64, this.options.int64));
        for (const r of (m.rows as Row[]) ?? []) sub.loadingMax = seqMax(sub.loadingMax, r._seq);
        if (control?.has_more) {
          this.socket?.send(
            JSON.stringify({ type: 'next_batch', subscription_id: sub.id, last_seq_id: control.last_seq_id }),
          );
        } else {
          sub.ready = true;
          sub.lastSeq = seqMax(seqMax(sub.lastSeq, sub.loadingMax), control?.last_seq_id);
          sub.loadingMax = undefined;
        }
        sub.callback({ ...(m as ServerMessage & { type: 'initial_data_batch' }), rows });
        return;
      }
      case 'change': {
        const rows = (m.rows as Row[] | undefined)?.map((r) => liveRow(r, sub.int64, this.options.int64));
        const old = (m.old_values as Row[] | undefined)?.map((r) => liveRow(r, sub.int64, this.options.int64));
        for (const r of [...((m.rows as Row[]) ?? []), ...((m.old_values as Row[]) ?? [])]) {
          if (sub.ready) sub.lastSeq = seqMax(sub.lastSeq, r._seq);
          else sub.loadingMax = seqMax(sub.loadingMax, r._seq);
        }
        const out = { ...(m as ServerMessage & { type: 'change' }) };
        if (rows) out.rows = rows;
        if (old) out.old_values = old;
        sub.callback(out);
        return;
      }
      case 'error': {
        const code = String(m.code ?? 'ERROR');
        if (sub.pending) {
          this.subs.delete(sub.id);
          sub.pending.reject(new KalamError(code, String(m.message ?? '')));
          return;
        }
        if (code === 'OVERFLOW') {
          // this client fell behind: pick up after what it has
          sub.ready = false;
          this.sendSubscribe(sub);
          return;
        }
        if (code === 'RESUME_TOO_OLD') {
          // start over: fresh initial rows follow
          sub.lastSeq = undefined;
          sub.ready = false;
          sub.callback(m as ServerMessage);
          this.sendSubscribe(sub);
          return;
        }
        this.subs.delete(sub.id);
        sub.callback(m as ServerMessage);
        return;
      }
    }
  }

  private sendSubscribe(sub: Sub): void {
    if (!this.socket || this.socket.readyState !== OPEN) return;
    // initial rows cut short are asked for again from the same cursor
    sub.sentOn = this.epoch;
    sub.ready = false;
    sub.loadingMax = undefined;
    const options: Record<string, unknown> = {};
    if (sub.options.batchSize !== undefined) options.batch_size = sub.options.batchSize;
    const from = sub.lastSeq ?? (sub.options.from === undefined ? undefined : String(sub.options.from));
    if (from !== undefined) options.from = from;
    else if (sub.options.lastRows !== undefined) options.last_rows = sub.options.lastRows;
    this.socket.send(JSON.stringify({ type: 'subscribe', subscription: { id: sub.id, sql: sub.sql, options } }));
  }

  /** Subscribes; resolves once the server acknowledged (registered) it. */
  async subscribe(sql: string, callback: SubscriptionCallback, options: SubscribeOptions = {}): Promise<Unsubscribe> {
    if (options.signal?.aborted) throw new KalamError('ABORTED', 'The subscription was aborted');
    const id = `sub-${this.nextId++}`;
    const sub: Sub = { id, sql, options, callback, int64: new Set(['_seq']), ready: false };
    const acked = new Promise<void>((resolve, reject) => {
      sub.pending = { resolve, reject };
    });
    this.subs.set(id, sub);
    try {
      await this.connect();
      // connecting sent it already if the socket was new
      if (sub.sentOn !== this.epoch) this.sendSubscribe(sub);
      await acked;
    } catch (e) {
      this.subs.delete(id);
      throw e;
    }
    const unsubscribe = Object.assign(async () => this.unsubscribe(id), { id });
    options.signal?.addEventListener('abort', () => void unsubscribe(), { once: true });
    return unsubscribe;
  }

  async unsubscribe(id: string): Promise<void> {
    if (!this.subs.delete(id)) return;
    if (this.socket?.readyState === OPEN) {
      this.socket.send(JSON.stringify({ type: 'unsubscribe', subscription_id: id }));
    }
    if (this.subs.size === 0 && this.reconnectTimer) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = undefined;
    }
  }

  async unsubscribeAll(): Promise<void> {
    for (const id of [...this.subs.keys()]) await this.unsubscribe(id);
  }

  subscriptions(): SubscriptionInfo[] {
    return [...this.subs.values()].map((s) => ({ id: s.id, sql: s.sql, lastSeqId: s.lastSeq, ready: s.ready }));
  }

  lastSeqId(id: string): string | undefined {
    return this.subs.get(id)?.lastSeq;
  }

  /** Closes the socket for good (subscriptions end). */
  close(): void {
    this.closedByUser = true;
    this.subs.clear();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.stopPings();
    const socket = this.socket;
    this.socket = undefined;
    socket?.close(1000, 'client closed');
  }
}
