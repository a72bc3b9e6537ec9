import { join } from 'node:path';
import { packageRoot } from '../platform/package-root';

/**
 * The proto files are the contract between gateway and collector. Code loads them at run time with
 * @grpc/proto-loader and uses the TypeScript types generated from them (proto/generated/, committed);
 * both must agree on these options, so they are defined once here.
 */
export const PROTO_FILES = [
  'gapwatch/v1/resource.proto',
  'gapwatch/v1/session.proto',
  'gapwatch/v1/http.proto',
  'gapwatch/v1/journal.proto',
  'gapwatch/v1/host.proto',
  'gapwatch/v1/alert.proto',
  'gapwatch/v1/audit.proto',
  'gapwatch/v1/ssh.proto',
] as const;

export const LOAD_OPTIONS = {
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
} as const;

/** The same choices, spelled as proto-loader-gen-types flags. */
export const GENERATOR_FLAGS = ['--longs=String', '--enums=String', '--defaults', '--oneofs', '--includeComments', '--grpcLib=@grpc/grpc-js'];

export function protoRoot(): string {
  return join(packageRoot(), 'proto');
}

export function generatedDir(): string {
  return join(protoRoot(), 'generated');
}
