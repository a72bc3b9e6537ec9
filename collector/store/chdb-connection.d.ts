// chdb publishes `chdb/connection` through package.json "exports", which this project's
// `moduleResolution: node` does not read; at run time Node resolves it. Point the types at the same file.
declare module 'chdb/connection' {
  export * from 'chdb/dist/connection/index';
}
