import { type AuthCredentials, type AuthProvider, type TokenPair, tokenExpiry } from './auth.js';
import { KalamError, errorOfReply } from './errors.js';
import {
  ChangeType,
  LiveConnection,
  type ServerMessage,
  type SubscribeOptions,
  type SubscriptionCallback,
  type SubscriptionInfo,
  type Unsubscribe,
  type WebSocketConstructor,
} from './live.js';
import {
  type Int64Mode,
  type QueryResponse,
  type QueryResult,
  type Row,
  type SqlParam,
  bigintReplacer,
  int64Of,
  rowObject,
} from './types.js';

export interface ClientOptions {
  /** `http://host:port` of the server. */
  url: string;
  /** Credentials, or a function returning them (called on every (re)connect). */
  authProvider?: AuthProvider;
  /** Shorthand for a fixed `authProvider`. */
  auth?: AuthCredentials;
  /** 64-bit integers as `string` (exact, the default) or `bigint`. */
  int64?: Int64Mode;
  /** A `fetch` (default: the global one). */
  fetch?: typeof fetch;
  /** A WebSocket class (default: the global one, else the `ws` package). */
  WebSocket?: WebSocketConstructor;
  /** Per HTTP request (default 30 s). */
  timeoutMs?: number;
  autoReconnect?: boolean;
  /** First reconnect delay, doubled per attempt with jitter (default 500 ms). */
  reconnectDelayMs?: number;
  maxReconnectDelayMs?: number;
  maxReconnectAttempts?: number;
  pingIntervalMs?: number;
  pongTimeoutMs?: number;
}

/** Runs `f` after the messages already received (one macrotask later). */
const soon: (f: () => void) => void = (() => {
  const immediate = (globalThis as { setImmediate?: (f: () => void) => void }).setImmediate;
  if (immediate) return (f: () => void) => immediate(f);
  if (typeof MessageChannel !== 'undefined') {
    const queue: Array<() => void> = [];
    const channel = new MessageChannel();
    channel.port1.onmessage = () => queue.shift()?.();
    return (f: () => void) => {
      queue.push(f);
      channel.port2.postMessage(0);
    };
  }
  return (f: () => void) => setTimeout(f, 0);
})();

/** Identifiers go into SQL only when they are plain names. */
function identifier(name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/.test(name)) {
    throw new KalamError('INVALID_PARAMETER', `'${name}' is not a table or column name`);
  }
  return name;
}

/** One event of `subscribeRows`. */
export interface RowEvent<T> {
  type: 'initial' | 'insert' | 'update' | 'delete' | 'error';
  rows: T[];
  /** `update`: the rows before. */
  oldRows?: T[];
  /** `initial`: the last batch of the initial rows. */
  ready?: boolean;
  /** `error`: what ended the subscription (or, for `RESUME_TOO_OLD`, what restarted it). */
  error?: KalamError;
}

/** A key: one value for a single-column primary key, else column → value. */
export type Key = SqlParam | Record<string, SqlParam>;

export class KalamDBClient {
  private readonly url: string;
  private readonly provider: AuthProvider;
  private readonly int64: Int64Mode;
  private readonly fetchImpl: typeof fetch;
  private readonly timeoutMs: number;
  private tokens?: TokenPair;
  private credentials?: AuthCredentials;
  private refreshTimer?: ReturnType<typeof setTimeout>;
  private keyColumns = new Map<string, string[]>();
  private readonly connection: LiveConnection;
  private readonly events = {
    connect: new Set<() => void>(),
    disconnect: new Set<(reason: string) => void>(),
    error: new Set<(error: KalamError) => void>(),
  };
  private liveOptions: {
    autoReconnect: boolean;
    reconnectDelayMs: number;
    maxReconnectDelayMs: number;
    maxReconnectAttempts: number;
  };

  constructor(options: ClientOptions) {
    this.url = options.url.replace(/\/+$/, '');
    const fixed = options.auth ?? { type: 'none' as const };
    this.provider = options.authProvider ?? (() => fixed);
    this.int64 = options.int64 ?? 'string';
    const f = options.fetch ?? globalThis.fetch;
    this.fetchImpl = f.bind(globalThis);
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.liveOptions = {
      autoReconnect: options.autoReconnect ?? true,
      reconnectDelayMs: options.reconnectDelayMs ?? 500,
      maxReconnectDelayMs: options.maxReconnectDelayMs ?? 15_000,
      maxReconnectAttempts: options.maxReconnectAttempts ?? Number.POSITIVE_INFINITY,
    };
    const settings = this.liveOptions;
    this.connection = new LiveConnection({
      url: this.url,
      token: (fresh) => this.accessToken(fresh),
      int64: this.int64,
      WebSocket: options.WebSocket,
      get autoReconnect() {
        return settings.autoReconnect;
      },
      get reconnectDelayMs() {
        return settings.reconnectDelayMs;
      },
      get maxReconnectDelayMs() {
        return settings.maxReconnectDelayMs;
      },
      get maxReconnectAttempts() {
        return settings.maxReconnectAttempts;
      },
      pingIntervalMs: options.pingIntervalMs ?? 5_000,
      pongTimeoutMs: options.pongTimeoutMs ?? 15_000,
      events: this.events,
    });
  }

  // ------------------------------------------------------------ auth

  private async currentCredentials(): Promise<AuthCredentials> {
    this.credentials = await this.provider();
    return this.credentials;
  }

  /** `Authorization` for an HTTP request. */
  private async authorization(): Promise<string | undefined> {
    const c = this.credentials ?? (await this.currentCredentials());
    if (c.type === 'basic') {
      if (this.tokens) return `Bearer ${this.tokens.accessToken}`;
      return `Basic ${btoa(unescape(encodeURIComponent(`${c.username}:${c.password}`)))}`;
    }
    if (c.type === 'jwt') return `Bearer ${c.token}`;
    return undefined;
  }

  /** An access token for the WebSocket: logs in with Basic credentials when needed. */
  private async accessToken(fresh: boolean): Promise<string> {
    const c = await this.currentCredentials();
    if (c.type === 'jwt') return c.token;
    if (c.type === 'none') throw new KalamError('AUTH_REQUIRED', 'Live queries need credentials');
    const soon = (this.tokens?.expiresAt ?? 0) * 1000 - Date.now() < 30_000;
    if (fresh || !this.tokens || soon) {
      if (this.tokens?.refreshToken && !fresh) {
        try {
          await this.refreshToken();
          return this.tokens!.accessToken;
        } catch {
          // fall back to a new login
        }
      }
      await this.login();
    }
    return this.tokens!.accessToken;
  }

  /** Logs in with the Basic credentials: an access and a refresh token,
   * refreshed before they expire from then on. */
  async login(): Promise<TokenPair> {
    const c = await this.currentCredentials();
    if (c.type !== 'basic') throw new KalamError('INVALID_PARAMETER', 'login() needs Auth.basic credentials');
    const body = await this.request('POST', '/v1/api/auth/login', { user: c.username, password: c.password }, false);
    return this.keepTokens(body);
  }

  /** Trades the refresh token for a new pair; a live socket is
   * re-authenticated with it and keeps its subscriptions. */
  async refreshToken(): Promise<TokenPair> {
    const refresh = this.tokens?.refreshToken;
    if (!refresh) throw new KalamError('INVALID_PARAMETER', 'No refresh token: log in first');
    const body = await this.request('POST', '/v1/api/auth/refresh', undefined, false, `Bearer ${refresh}`);
    const pair = this.keepTokens(body);
    this.connection.reauthenticate(pair.accessToken);
    return pair;
  }

  private keepTokens(body: unknown): TokenPair {
    const b = body as { access_token: string; refresh_token?: string };
    this.tokens = {
      accessToken: b.access_token,
      refreshToken: b.refresh_token,
      expiresAt: tokenExpiry(b.access_token),
    };
    this.scheduleRefresh();
    return this.tokens;
  }

  private scheduleRefresh(): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    const exp = this.tokens?.expiresAt;
    if (!exp || !this.tokens?.refreshToken) return;
    const lifetime = exp * 1000 - Date.now();
    // 60 s before expiry, or at 80 % of a shorter lifetime
    const wait = Math.max(1000, Math.min(lifetime - 60_000, lifetime * 0.8));
    this.refreshTimer = setTimeout(() => {
      this.refreshToken().catch((e) => {
        for (const f of this.events.error) f(e instanceof KalamError ? e : new KalamError('NETWORK', String(e)));
      });
    }, wait);
    (this.refreshTimer as { unref?: () => void }).unref?.();
  }

  // ------------------------------------------------------------ HTTP

  private async request(
    method: string,
    path: string,
    body: unknown,
    authenticated = true,
    authorization?: string,
  ): Promise<unknown> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    const auth = authorization ?? (authenticated ? await this.authorization() : undefined);
    if (auth) headers.authorization = auth;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.timeoutMs);
    let response: Response;
    try {
      response = await this.fetchImpl(this.url + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body, bigintReplacer),
        signal: controller.signal,
      });
    } catch (e) {
      const timedOut = controller.signal.aborted;
      throw new KalamError(
        timedOut ? 'TIMEOUT' : 'NETWORK',
        timedOut ? `No answer within ${this.timeoutMs} ms` : `Cannot reach ${this.url}: ${e}`,
        { cause: e },
      );
    } finally {
      clearTimeout(timer);
    }
    const text = await response.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      throw new KalamError('PROTOCOL', `Not JSON (HTTP ${response.status}): ${text.slice(0, 200)}`, {
        status: response.status,
      });
    }
    if (!response.ok) {
      // a token from login() that the server no longer takes: log in again, once
      if (response.status === 401 && authenticated && !authorization && this.tokens && this.credentials?.type === 'basic') {
        this.tokens = undefined;
        return this.request(method, path, body, authenticated);
      }
      throw errorOfReply(response.status, json);
    }
    return json;
  }

  /** Runs SQL (`$1…$n` bound to `params`): one result per statement. */
  async query(sql: string, params?: SqlParam[], options: { namespace?: string } = {}): Promise<QueryResponse> {
    const body: Record<string, unknown> = { sql };
    if (params && params.length > 0) body.params = params;
    if (options.namespace) body.namespace_id = options.namespace;
    const reply = (await this.request('POST', '/v1/api/sql', body)) as QueryResponse;
    for (const r of reply.results) {
      r.schema ??= [];
      r.rows ??= [];
      if (this.int64 === 'bigint') {
        const wide = r.schema.map((c) => c.data_type === 'BigInt');
        r.rows = r.rows.map((row) => row.map((v, i) => (wide[i] ? int64Of(v, 'bigint') : v)));
      }
    }
    return reply;
  }

  /** The rows of the last statement, as objects. */
  async queryAll(sql: string, params?: SqlParam[]): Promise<Row[]> {
    return this.queryRows<Row>(sql, params);
  }

  /** The rows of the last statement, as objects of type `T`. */
  async queryRows<T = Row>(sql: string, params?: SqlParam[]): Promise<T[]> {
    const reply = await this.query(sql, params);
    const last: QueryResult | undefined = reply.results[reply.results.length - 1];
    if (!last) return [];
    // query() converted 64-bit integers already
    return last.rows.map((row) => rowObject(last.schema, row, 'string') as T);
  }

  /** The first row of the last statement, or null. */
  async queryOne<T = Row>(sql: string, params?: SqlParam[]): Promise<T | null> {
    const rows = await this.queryRows<T>(sql, params);
    return rows[0] ?? null;
  }

  /** Runs one statement as `user` (the caller must be allowed to). */
  async executeAsUser(sql: string, user: string, params?: SqlParam[]): Promise<QueryResponse> {
    const quoted = `'${user.replace(/'/g, "''")}'`;
    return this.query(`EXECUTE AS USER ${quoted} (${sql})`, params);
  }

  /** The table's primary-key columns (read once from its schema). */
  private async primaryKey(table: string): Promise<string[]> {
    const name = identifier(table);
    const known = this.keyColumns.get(name);
    if (known) return known;
    const reply = await this.query(`SELECT * FROM ${name} LIMIT 0`);
    const keys = reply.results[0].schema.filter((c) => c.flags?.includes('pk')).map((c) => c.name);
    if (keys.length === 0) throw new KalamError('NOT_SUPPORTED', `Table ${name} has no PRIMARY KEY`);
    this.keyColumns.set(name, keys);
    return keys;
  }

  private async keyFilter(table: string, key: Key, first: number): Promise<{ where: string; params: SqlParam[] }> {
    const columns = await this.primaryKey(table);
    const values: Record<string, SqlParam> =
      columns.length === 1 && (typeof key !== 'object' || key === null || Array.isArray(key))
        ? { [columns[0]]: key as SqlParam }
        : (key as Record<string, SqlParam>);
    const params: SqlParam[] = [];
    const terms = columns.map((c) => {
      if (!(c in values)) throw new KalamError('INVALID_PARAMETER', `The key of ${table} needs ${c}`);
      params.push(values[c]);
      return `${c} = $${first + params.length - 1}`;
    });
    return { where: terms.join(' AND '), params };
  }

  /** INSERT one row (values bound as parameters). */
  async insert(table: string, row: Record<string, SqlParam>): Promise<QueryResult> {
    const columns = Object.keys(row).map(identifier);
    if (columns.length === 0) throw new KalamError('INVALID_PARAMETER', 'insert() needs at least one column');
    const placeholders = columns.map((_, i) => `$${i + 1}`);
    const reply = await this.query(
      `INSERT INTO ${identifier(table)} (${columns.join(', ')}) VALUES (${placeholders.join(', ')})`,
      columns.map((c) => row[c]),
    );
    return reply.results[0];
  }

  /** UPDATE the row with primary key `key`. */
  async update(table: string, key: Key, changes: Record<string, SqlParam>): Promise<QueryResult> {
    const columns = Object.keys(changes).map(identifier);
    if (columns.length === 0) throw new KalamError('INVALID_PARAMETER', 'update() needs at least one change');
    const set = columns.map((c, i) => `${c} = $${i + 1}`).join(', ');
    const filter = await this.keyFilter(table, key, columns.length + 1);
    const reply = await this.query(`UPDATE ${identifier(table)} SET ${set} WHERE ${filter.where}`, [
      ...columns.map((c) => changes[c]),
      ...filter.params,
    ]);
    return reply.results[0];
  }

  /** DELETE the row with primary key `key`. */
  async delete(table: string, key: Key): Promise<QueryResult> {
    const filter = await this.keyFilter(table, key, 1);
    const reply = await this.query(`DELETE FROM ${identifier(table)} WHERE ${filter.where}`, filter.params);
    return reply.results[0];
  }

  // ------------------------------------------------------------ live

  /** Opens (and authenticates) the live socket now; subscribing does it too. */
  async connect(): Promise<void> {
    await this.connection.connect();
  }

  /** Every row of `table`, then each change. */
  subscribe(table: string, callback: SubscriptionCallback, options?: SubscribeOptions): Promise<Unsubscribe> {
    return this.connection.subscribe(`SELECT * FROM ${identifier(table)}`, callback, options);
  }

  /**
   * A live query. With a callback: resolves (to its unsubscribe function)
   * once the server has registered it — a write after that is always seen.
   * Without: an async iterable of its messages (`for await`).
   */
  subscribeWithSql(sql: string, callback: SubscriptionCallback, options?: SubscribeOptions): Promise<Unsubscribe>;
  subscribeWithSql(sql: string, callback?: undefined, options?: SubscribeOptions): AsyncIterable<ServerMessage>;
  subscribeWithSql(
    sql: string,
    callback?: SubscriptionCallback,
    options?: SubscribeOptions,
  ): Promise<Unsubscribe> | AsyncIterable<ServerMessage> {
    if (callback) return this.connection.subscribe(sql, callback, options);
    return this.iterate(sql, options);
  }

  private iterate(sql: string, options?: SubscribeOptions): AsyncIterable<ServerMessage> {
    const live = this.connection;
    return {
      [Symbol.asyncIterator](): AsyncIterator<ServerMessage> {
        const queue: ServerMessage[] = [];
        let wake: (() => void) | undefined;
        let failure: unknown;
        let done = false;
        const started = live
          .subscribe(
            sql,
            (m) => {
              queue.push(m);
              wake?.();
            },
            options,
          )
          .catch((e) => {
            failure = e;
            wake?.();
            return undefined;
          });
        options?.signal?.addEventListener('abort', () => {
          done = true;
          wake?.();
        });
        return {
          async next(): Promise<IteratorResult<ServerMessage>> {
            for (;;) {
              if (failure) throw failure;
              const m = queue.shift();
              if (m) return { value: m, done: false };
              if (done) return { value: undefined, done: true };
              await new Promise<void>((r) => {
                wake = r;
              });
              wake = undefined;
            }
          },
          async return(): Promise<IteratorResult<ServerMessage>> {
            done = true;
            const stop = await started;
            await stop?.();
            return { value: undefined, done: true };
          },
        };
      },
    };
  }

  /**
   * A live query as typed row events, without the protocol's envelope:
   * `initial` (the rows at subscribe time, possibly in several calls),
   * then `insert`, `update` (with `oldRows`) and `delete` (the removed rows
   * in `rows`). `_seq` stays on each row (a resume cursor).
   */
  subscribeRows<T extends Row = Row>(
    sql: string,
    onChange: (event: RowEvent<T>) => void,
    options?: SubscribeOptions,
  ): Promise<Unsubscribe> {
    return this.connection.subscribe(
      sql,
      (m) => {
        if (m.type === 'initial_data_batch') {
          onChange({ type: 'initial', rows: m.rows as T[], ready: !m.batch_control.has_more });
        } else if (m.type === 'change') {
          if (m.change_type === 'delete') onChange({ type: 'delete', rows: (m.old_values ?? []) as T[] });
          else if (m.change_type === 'update')
            onChange({ type: 'update', rows: (m.rows ?? []) as T[], oldRows: (m.old_values ?? []) as T[] });
          else onChange({ type: 'insert', rows: (m.rows ?? []) as T[] });
        } else if (m.type === 'error') {
          onChange({ type: 'error', rows: [], error: new KalamError(m.code, m.message) });
        }
      },
      options,
    );
  }

  /** The rows of a live query as they are: `onRows` gets the whole ordered
   * set after every change (row objects keep their identity while unchanged). */
  async live<T extends Row = Row>(
    sql: string,
    onRows: (rows: T[]) => void,
    options: SubscribeOptions & { keyColumns?: string[]; getKey?: (row: T) => string; limit?: number } = {},
  ): Promise<Unsubscribe> {
    const rows = new Map<string, T>();
    let keyOf = options.getKey;
    let ready = false;
    // one call per burst of messages, not per message: a 200k-row set
    // copied for each of 1,000 messages would be quadratic
    let scheduled = false;
    const emit = () => {
      if (scheduled) return;
      scheduled = true;
      soon(() => {
        scheduled = false;
        let out = [...rows.values()];
        if (options.limit !== undefined) out = out.slice(-options.limit);
        onRows(out);
      });
    };
    const withoutSeq = (r: Row): T => {
      const { _seq: _ignored, ...rest } = r;
      return rest as T;
    };
    return this.connection.subscribe(
      sql,
      (m) => {
        switch (m.type) {
          case 'subscription_ack': {
            if (!keyOf) {
              const keys =
                options.keyColumns ?? m.schema.filter((c) => c.flags?.includes('pk')).map((c) => c.name);
              const columns = keys.length > 0 ? keys : ['_seq'];
              keyOf = (r: T) => columns.map((c) => String((r as Row)[c])).join('\u0000');
            }
            return;
          }
          case 'initial_data_batch':
            for (const r of m.rows) rows.set(keyOf!(r as T), withoutSeq(r));
            if (!m.batch_control.has_more) {
              ready = true;
              emit();
            }
            return;
          case 'change': {
            // an update keeps its row's place; a key it left is gone
            const kept = new Set((m.rows ?? []).map((r) => keyOf!(r as T)));
            if (m.change_type !== ChangeType.Insert) {
              for (const r of m.old_values ?? []) {
                const k = keyOf!(r as T);
                if (!kept.has(k)) rows.delete(k);
              }
            }
            for (const r of m.rows ?? []) rows.set(keyOf!(r as T), withoutSeq(r));
            if (ready) emit();
            return;
          }
          case 'error':
            if (m.code === 'RESUME_TOO_OLD') rows.clear();
            return;
        }
      },
      options,
    );
  }

  /** `live()` over every row of `table`. */
  liveTableRows<T extends Row = Row>(
    table: string,
    onRows: (rows: T[]) => void,
    options?: SubscribeOptions & { keyColumns?: string[]; getKey?: (row: T) => string; limit?: number },
  ): Promise<Unsubscribe> {
    return this.live<T>(`SELECT * FROM ${identifier(table)}`, onRows, options);
  }

  unsubscribe(id: string): Promise<void> {
    return this.connection.unsubscribe(id);
  }

  unsubscribeAll(): Promise<void> {
    return this.connection.unsubscribeAll();
  }

  getSubscriptions(): SubscriptionInfo[] {
    return this.connection.subscriptions();
  }

  /** The `_seq` a subscription would resume after. */
  getLastSeqId(id: string): string | undefined {
    return this.connection.lastSeqId(id);
  }

  onConnect(f: () => void): () => void {
    this.events.connect.add(f);
    return () => this.events.connect.delete(f);
  }

  onDisconnect(f: (reason: string) => void): () => void {
    this.events.disconnect.add(f);
    return () => this.events.disconnect.delete(f);
  }

  onError(f: (error: KalamError) => void): () => void {
    this.events.error.add(f);
    return () => this.events.error.delete(f);
  }

  setAutoReconnect(on: boolean): void {
    this.liveOptions.autoReconnect = on;
  }

  setReconnectDelay(ms: number, maxMs = this.liveOptions.maxReconnectDelayMs): void {
    this.liveOptions.reconnectDelayMs = ms;
    this.liveOptions.maxReconnectDelayMs = maxMs;
  }

  setMaxReconnectAttempts(n: number): void {
    this.liveOptions.maxReconnectAttempts = n;
  }

  /** Closes the live socket and stops refreshing tokens. */
  close(): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.connection.close();
  }
}

export function createClient(options: ClientOptions): KalamDBClient {
  return new KalamDBClient(options);
}
