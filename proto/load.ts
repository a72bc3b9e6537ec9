import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { LOAD_OPTIONS, PROTO_FILES, protoRoot } from './options';
import type { ProtoGrpcType as AlertGrpcType } from './generated/alert';
import type { ProtoGrpcType as AuditGrpcType } from './generated/audit';

/** Every service of the package: Audit (gateway) and AlertWatch (collector). */
type ProtoGrpcType = AuditGrpcType & AlertGrpcType;

let cached: ProtoGrpcType | undefined;

/** The gapwatch.v1 package as gRPC constructors, typed by the generated code. */
export function loadGapwatchProto(): ProtoGrpcType {
  if (!cached) {
    const definition = protoLoader.loadSync([...PROTO_FILES], { ...LOAD_OPTIONS, includeDirs: [protoRoot()] });
    cached = grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType;
  }
  return cached;
}
