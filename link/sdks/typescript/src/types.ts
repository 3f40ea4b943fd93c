/** One column of a result, as the server describes it. */
export interface ColumnInfo {
  name: string;
  /** `BigInt`, `Int`, `Text`, `Boolean`, `Timestamp`, `Json`, … */
  data_type: string;
  index: number;
  /** `pk` (primary key), `nn` (not null), `uq` (unique). */
  flags?: string[];
}

/** A row keyed by column name. */
export type Row = Record<string, unknown>;

/** One statement's result: positional `rows` in `schema` order. */
export interface QueryResult {
  schema: ColumnInfo[];
  rows: unknown[][];
  row_count: number;
  message: string | null;
  as_user: string;
}

/** The reply of `POST /v1/api/sql`. */
export interface QueryResponse {
  status: 'success';
  results: QueryResult[];
  /** Milliseconds the server took. */
  took: number;
}

/**
 * How 64-bit integers arrive: `string` (the server's own form, exact; the
 * default) or `bigint`. Never a JavaScript number, which rounds above 2^53.
 */
export type Int64Mode = 'string' | 'bigint';

/** A SQL parameter: bigint values are sent exactly, as strings. */
export type SqlParam = string | number | bigint | boolean | null | Record<string, unknown> | unknown[];

/** `JSON.stringify` replacer that writes bigint values as strings. */
export function bigintReplacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

/** `JSON.stringify` that never throws on bigint values (they become strings). */
export function stringify(value: unknown, space?: number | string): string {
  return JSON.stringify(value, bigintReplacer, space);
}

/** The columns whose values are 64-bit integers. */
export function int64Columns(schema: ColumnInfo[] | undefined): Set<string> {
  const out = new Set<string>(['_seq']);
  for (const c of schema ?? []) if (c.data_type === 'BigInt') out.add(c.name);
  return out;
}

/** `value` as the chosen 64-bit form (strings from the server stay exact). */
export function int64Of(value: unknown, mode: Int64Mode): unknown {
  if (mode === 'bigint' && (typeof value === 'string' || typeof value === 'number')) {
    try {
      return BigInt(value);
    } catch {
      return value;
    }
  }
  return value;
}

/** A positional row as an object, 64-bit integers in `mode`. */
export function rowObject(schema: ColumnInfo[], row: unknown[], mode: Int64Mode): Row {
  const out: Row = {};
  for (const c of schema) {
    const v = row[c.index];
    out[c.name] = c.data_type === 'BigInt' ? int64Of(v, mode) : v;
  }
  return out;
}

/** A row object from the live stream with its 64-bit integers in `mode`. */
export function liveRow(row: Row, int64: Set<string>, mode: Int64Mode): Row {
  if (mode === 'string') return row;
  const out: Row = { ...row };
  for (const k of int64) if (k in out) out[k] = int64Of(out[k], mode);
  return out;
}
