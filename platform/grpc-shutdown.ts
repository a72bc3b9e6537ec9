import type * as grpc from '@grpc/grpc-js';

/**
 * Stops a gRPC server: lets in-flight calls finish for up to `graceMs`, then cuts what is left (a
 * stream whose peer stopped reading would otherwise hold the shutdown forever).
 */
export function shutdownGrpcServer(server: grpc.Server, graceMs = 2000): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
