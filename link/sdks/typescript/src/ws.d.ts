// `ws` is an optional peer dependency: only its WebSocket class is used.
declare module 'ws';
