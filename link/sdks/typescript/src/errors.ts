/** An error the server answered with, or one the client met on its way. */
export class KalamError extends Error {
  /** The server's error code (`TABLE_NOT_FOUND`, `UNAUTHORIZED`, …), or the
   * client's own: `NETWORK`, `TIMEOUT`, `ABORTED`, `CLOSED`, `PROTOCOL`. */
  readonly code: string;
  /** 1-based statement of a batch that failed, when the server says so. */
  readonly statementIndex?: number;
  /** HTTP status, for errors of HTTP requests. */
  readonly status?: number;
  readonly details?: unknown;

  constructor(
    code: string,
    message: string,
    options: { statementIndex?: number; status?: number; details?: unknown; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KalamError';
    this.code = code;
    this.statementIndex = options.statementIndex;
    this.status = options.status;
    this.details = options.details;
  }
}

/** The error of a server reply `{ status: "error", error: { code, message } }`. */
export function errorOfReply(status: number, body: unknown): KalamError {
  const error = (body as { error?: { code?: string; message?: string; details?: unknown } })?.error;
  const message = error?.message ?? `HTTP ${status}`;
  const index = /^Statement (\d+) failed: /.exec(message);
  return new KalamError(error?.code ?? `HTTP_${status}`, message, {
    status,
    details: error?.details ?? undefined,
    statementIndex: index ? Number(index[1]) : undefined,
  });
}
