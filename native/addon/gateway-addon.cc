// gapwatch_gateway: the gateway's native core for Node — the audit journal's chain (journal-chain.*),
// which the native data paths append to as well, the PostgreSQL and HTTP records they append
// (pg-records.*, http-records.*), the HTTP framing of the native HTTP data path (http-framing.*) — test
// code reaches those only through the parity-test hooks (pg-records-binding.cc, http-records-binding.cc,
// http-framing-binding.cc) —, and the native data paths themselves (pg-datapath.*, http-datapath.*). A separate addon from
// gapwatch_native so a gateway depends on OpenSSL and zlib only, never on libbpf. JS view:
// gateway/journal/chain-writer.ts.
#include <napi.h>
#include <string.h>

#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "journal-chain.h"
#include "http-datapath.h"
#include "pg-datapath.h"
#include "literal-shape.h"
#include "pg-records-binding.h"
#include "http-records-binding.h"
#include "http-framing-binding.h"

namespace {

uint64_t bigint_arg(const Napi::CallbackInfo& info, std::size_t index, const char* what) {
  if (info.Length() <= index || !info[index].IsBigInt()) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a bigint");
  }
  bool lossless = false;
  uint64_t value = info[index].As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) throw Napi::RangeError::New(info.Env(), std::string(what) + " must fit in 64 unsigned bits");
  return value;
}

Napi::Uint8Array bytes_arg(const Napi::CallbackInfo& info, std::size_t index, const char* what) {
  if (info.Length() <= index || !info[index].IsTypedArray() ||
      info[index].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a Buffer or Uint8Array");
  }
  return info[index].As<Napi::Uint8Array>();
}

double number_arg(const Napi::CallbackInfo& info, std::size_t index, const char* what) {
  if (info.Length() <= index || !info[index].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  }
  double value = info[index].As<Napi::Number>().DoubleValue();
  if (!(value >= 0) || value > 9007199254740991.0 || value != static_cast<double>(static_cast<uint64_t>(value))) {
    throw Napi::RangeError::New(info.Env(), std::string(what) + " must be a non-negative safe integer");
  }
  return value;
}

Napi::Buffer<unsigned char> hash_buffer(Napi::Env env, const unsigned char* hash) {
  return Napi::Buffer<unsigned char>::Copy(env, hash, gapwatch::JournalChain::kHashBytes);
}

class NativeJournalChain : public Napi::ObjectWrap<NativeJournalChain> {
 public:
  static Napi::FunctionReference constructor;

  gapwatch::JournalChain* chain() const { return chain_.get(); }

  static Napi::Function Define(Napi::Env env) {
    Napi::Function defined = DefineClass(env, "JournalChain",
                       {
                           InstanceMethod<&NativeJournalChain::WrittenHead>("writtenHead"),
                           InstanceMethod<&NativeJournalChain::SyncedHead>("syncedHead"),
                           InstanceMethod<&NativeJournalChain::LockHead>("lockHead"),
                           InstanceMethod<&NativeJournalChain::AppendAndUnlock>("appendAndUnlock"),
                           InstanceMethod<&NativeJournalChain::Unlock>("unlock"),
                           InstanceMethod<&NativeJournalChain::FramedBytes>("framedBytes"),
                           InstanceMethod<&NativeJournalChain::Append>("append"),
                           InstanceMethod<&NativeJournalChain::AppendKeepingFrame>("appendKeepingFrame"),
                           InstanceMethod<&NativeJournalChain::Head>("head"),
                           InstanceMethod<&NativeJournalChain::SetActive>("setActive"),
                           InstanceMethod<&NativeJournalChain::Write>("write"),
                           InstanceMethod<&NativeJournalChain::PendingBytes>("pendingBytes"),
                           InstanceMethod<&NativeJournalChain::Discard>("discard"),
                       });
    constructor = Napi::Persistent(defined);
    constructor.SuppressDestruct();
    return defined;
  }

  // new JournalChain(gatewayId: string, lastSeq: bigint, lastHash: Buffer /* 32 bytes */)
  explicit NativeJournalChain(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeJournalChain>(info) {
    if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(info.Env(), "gatewayId must be a string");
    uint64_t last_seq = bigint_arg(info, 1, "lastSeq");
    Napi::Uint8Array last_hash = bytes_arg(info, 2, "lastHash");
    if (last_hash.ByteLength() != gapwatch::JournalChain::kHashBytes) {
      throw Napi::RangeError::New(info.Env(), "lastHash must be 32 bytes");
    }
    chain_ = std::make_unique<gapwatch::JournalChain>(info[0].As<Napi::String>().Utf8Value(), last_seq, last_hash.Data());
  }

 private:
  // append(suffix): bigint — the record's seq (native data paths append to the same chain)
  Napi::Value Append(const Napi::CallbackInfo& info) {
    Napi::Uint8Array suffix = bytes_arg(info, 0, "suffix");
    return Napi::BigInt::New(info.Env(), chain_->append(suffix.Data(), suffix.ByteLength(), nullptr));
  }

  // lockHead(): { seq, hash } — and the chain stays locked until appendAndUnlock() or unlock()
  Napi::Value LockHead(const Napi::CallbackInfo& info) {
    unsigned char hash[gapwatch::JournalChain::kHashBytes];
    uint64_t seq = chain_->lock_head(hash);
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("seq", Napi::BigInt::New(info.Env(), seq));
    out.Set("hash", hash_buffer(info.Env(), hash));
    return out;
  }

  // appendAndUnlock(suffix, segmentStartsHere: boolean): { seq, frame }
  Napi::Value AppendAndUnlock(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsTypedArray()) {
      chain_->unlock();
      throw Napi::TypeError::New(info.Env(), "suffix must be a Buffer or Uint8Array");
    }
    Napi::Uint8Array suffix = info[0].As<Napi::Uint8Array>();
    std::vector<unsigned char> frame;
    uint64_t seq = chain_->append_and_unlock(suffix.Data(), suffix.ByteLength(), &frame, info.Length() > 1 && info[1].ToBoolean());
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("seq", Napi::BigInt::New(info.Env(), seq));
    out.Set("frame", Napi::Buffer<unsigned char>::Copy(info.Env(), frame.data(), frame.size()));
    return out;
  }

  Napi::Value FramedBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(chain_->framed_bytes()));
  }

  Napi::Value Unlock(const Napi::CallbackInfo& info) {
    chain_->unlock();
    return info.Env().Undefined();
  }

  // syncedHead(): { seq: bigint, hash: Buffer } — what a native data path's own fdatasync covered
  Napi::Value SyncedHead(const Napi::CallbackInfo& info) {
    unsigned char hash[gapwatch::JournalChain::kHashBytes];
    uint64_t size = 0;
    uint64_t segment = 0;
    uint64_t seq = chain_->synced_head(hash, &size, &segment);
    uint64_t written = 0, durable = 0, rounds = 0;
    chain_->acks(&written, &durable, &rounds);
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("seq", Napi::BigInt::New(info.Env(), seq));
    out.Set("hash", hash_buffer(info.Env(), hash));
    out.Set("size", Napi::Number::New(info.Env(), static_cast<double>(size)));
    out.Set("segmentFirstSeq", Napi::BigInt::New(info.Env(), segment));
    out.Set("acksWritten", Napi::Number::New(info.Env(), static_cast<double>(written)));
    out.Set("acksDurable", Napi::Number::New(info.Env(), static_cast<double>(durable)));
    out.Set("syncRounds", Napi::Number::New(info.Env(), static_cast<double>(rounds)));
    return out;
  }

  // writtenHead(): { seq: bigint, hash: Buffer, size: number } — what any writer has put in the file
  Napi::Value WrittenHead(const Napi::CallbackInfo& info) {
    unsigned char hash[gapwatch::JournalChain::kHashBytes];
    uint64_t size = 0;
    uint64_t seq = chain_->written_head(hash, &size);
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("seq", Napi::BigInt::New(info.Env(), seq));
    out.Set("hash", hash_buffer(info.Env(), hash));
    out.Set("size", Napi::Number::New(info.Env(), static_cast<double>(size)));
    return out;
  }

  // appendKeepingFrame(suffix): { seq: bigint, frame: Buffer } — for records copied elsewhere too
  Napi::Value AppendKeepingFrame(const Napi::CallbackInfo& info) {
    Napi::Uint8Array suffix = bytes_arg(info, 0, "suffix");
    std::vector<unsigned char> frame;
    uint64_t seq = chain_->append(suffix.Data(), suffix.ByteLength(), &frame);
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("seq", Napi::BigInt::New(info.Env(), seq));
    out.Set("frame", Napi::Buffer<unsigned char>::Copy(info.Env(), frame.data(), frame.size()));
    return out;
  }

  // head(): { seq: bigint, hash: Buffer } — the last assigned record, written or not
  Napi::Value Head(const Napi::CallbackInfo& info) {
    unsigned char hash[gapwatch::JournalChain::kHashBytes];
    uint64_t seq = chain_->head(hash);
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("seq", Napi::BigInt::New(info.Env(), seq));
    out.Set("hash", hash_buffer(info.Env(), hash));
    return out;
  }

  // setActive(fd: number /* -1: none */, size: number, indexFirstSeq: bigint, indexInterval: number)
  Napi::Value SetActive(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "fd must be a number");
    int32_t fd = info[0].As<Napi::Number>().Int32Value();  // -1: no active segment (closed)
    double size = number_arg(info, 1, "size");
    uint64_t first = bigint_arg(info, 2, "indexFirstSeq");
    double interval = number_arg(info, 3, "indexInterval");
    chain_->set_active(fd < 0 ? -1 : fd, static_cast<uint64_t>(size), first, static_cast<uint64_t>(interval));
    return info.Env().Undefined();
  }

  // write(uptoSeq: bigint): null | { bytes, seq: bigint, hash: Buffer, size, index: [seq: bigint, offset: number][] }
  // A failed pwrite throws an Error with the errno's name as `code` (EIO, ENOSPC …).
  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t upto = bigint_arg(info, 0, "uptoSeq");
    gapwatch::JournalChain::Written written;
    try {
      written = chain_->write(upto);
    } catch (const std::system_error& err) {
      Napi::Error error = Napi::Error::New(env, err.what());
      const char* name = strerrorname_np(err.code().value());
      error.Set("code", Napi::String::New(env, name != nullptr ? name : "EIO"));
      error.Set("errno", Napi::Number::New(env, err.code().value()));
      throw error;
    }
    if (written.bytes == 0) return env.Null();
    Napi::Object out = Napi::Object::New(env);
    out.Set("bytes", Napi::Number::New(env, static_cast<double>(written.bytes)));
    out.Set("seq", Napi::BigInt::New(env, written.seq));
    out.Set("hash", hash_buffer(env, written.hash));
    out.Set("size", Napi::Number::New(env, static_cast<double>(written.size)));
    Napi::Array index = Napi::Array::New(env, written.index.size());
    for (std::size_t i = 0; i < written.index.size(); i++) {
      Napi::Array pair = Napi::Array::New(env, 2);
      pair.Set(0u, Napi::BigInt::New(env, written.index[i].first));
      pair.Set(1u, Napi::Number::New(env, static_cast<double>(written.index[i].second)));
      index.Set(static_cast<uint32_t>(i), pair);
    }
    out.Set("index", index);
    return out;
  }

  Napi::Value PendingBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(chain_->pending_bytes()));
  }

  Napi::Value Discard(const Napi::CallbackInfo& info) {
    chain_->discard();
    return info.Env().Undefined();
  }

  std::unique_ptr<gapwatch::JournalChain> chain_;
};

Napi::FunctionReference NativeJournalChain::constructor;

}  // namespace

namespace gapwatch {

JournalChain* unwrap_journal_chain(Napi::Value value) {
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(NativeJournalChain::constructor.Value())) {
    throw Napi::TypeError::New(value.Env(), "expected a JournalChain");
  }
  return NativeJournalChain::Unwrap(value.As<Napi::Object>())->chain();
}

}  // namespace gapwatch

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("JournalChain", NativeJournalChain::Define(env));
  gapwatch::register_pg_datapath(env, exports);
  gapwatch::register_http_datapath(env, exports);
  gapwatch::register_pg_records_test_hook(env, exports);
  gapwatch::register_http_records_test_hook(env, exports);
  gapwatch::register_literal_shape_test_hook(env, exports);
  gapwatch::register_http_framing_test_hook(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(gapwatch_gateway, Init)
