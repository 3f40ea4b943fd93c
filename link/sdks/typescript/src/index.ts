/**
 * `@kalamdb/client`: SQL over HTTP and live queries over one WebSocket, in
 * plain TypeScript with no runtime dependencies in browsers (Node.js < 22
 * uses the optional `ws` package).
 */
export { Auth, type AuthCredentials, type AuthProvider, type TokenPair } from './auth.js';
export { KalamDBClient, createClient, type ClientOptions, type Key, type RowEvent } from './client.js';
export { KalamError } from './errors.js';
export {
  ChangeType,
  MessageType,
  type BatchControl,
  type ServerMessage,
  type SubscribeOptions,
  type SubscriptionCallback,
  type SubscriptionInfo,
  type Unsubscribe,
  type WebSocketConstructor,
} from './live.js';
export {
  bigintReplacer,
  stringify,
  type ColumnInfo,
  type Int64Mode,
  type QueryResponse,
  type QueryResult,
  type Row,
  type SqlParam,
} from './types.js';
