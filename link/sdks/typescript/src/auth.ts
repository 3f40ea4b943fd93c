/** How a client proves who it is. */
export type AuthCredentials =
  | { type: 'basic'; username: string; password: string }
  | { type: 'jwt'; token: string }
  | { type: 'none' };

/**
 * Called on every (re)connect and whenever the client needs credentials:
 * return fresh ones (a token from your own auth service, say).
 */
export type AuthProvider = () => AuthCredentials | Promise<AuthCredentials>;

export const Auth = {
  /** A user name and password. The client logs in once and then uses tokens. */
  basic(username: string, password: string): AuthCredentials {
    return { type: 'basic', username, password };
  },
  /** An access token (JWT) you already hold. */
  jwt(token: string): AuthCredentials {
    return { type: 'jwt', token };
  },
  /** No credentials (only `/health` answers). */
  none(): AuthCredentials {
    return { type: 'none' };
  },
};

/** The seconds-since-epoch expiry of a JWT, or undefined if it has none. */
export function tokenExpiry(token: string): number | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
    const exp = (JSON.parse(json) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp : undefined;
  } catch {
    return undefined;
  }
}

/** Tokens from `/v1/api/auth/login` or `/refresh`. */
export interface TokenPair {
  accessToken: string;
  refreshToken?: string;
  /** Seconds since the epoch. */
  expiresAt?: number;
}
