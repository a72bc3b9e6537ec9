#ifndef GAPWATCH_PG_RECORDS_H
#define GAPWATCH_PG_RECORDS_H

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "session-event.h"

// The two journal records the PostgreSQL gateway writes per statement, encoded in C++ for the native
// data path: the write-ahead PgRequest and the Statement outcome (proto/gapwatch/v1/session.proto).
// The output is the record's suffix, the bytes JournalChain::append takes (fields 5 and up:
// time_unix_nano, then body.event), byte for byte what recordSuffix() in gateway/journal/record-chain.ts
// makes of the same record with the canonical encoder (gateway/journal/canonical-encoding.ts), so a
// record appended from C++ hashes and verifies like one appended from JavaScript.
//
// Every string is given as the bytes received (a view into a receive buffer; nothing is copied
// before encoding) and written as Node's Buffer.toString('utf8') would decode it: valid UTF-8 as it
// is, each maximal invalid subpart as U+FFFD (the WHATWG decoder). Strings that are already valid
// UTF-8 (type names, `via`, policy rule names) are thus written unchanged.
namespace gapwatch::pgrec {

// A Bind parameter or FunctionCall argument as it arrived, and what policy made of it.
enum class ParameterKind : uint8_t {
  Text,      // text format: `value` is decoded as UTF-8
  Binary,    // binary format: `value` is hex-encoded
  Null,      // length -1 on the wire
  Redacted,  // a masking pattern matched: the value stays out of the journal
};

struct Parameter {
  ParameterKind kind = ParameterKind::Null;
  std::string_view value;  // raw wire bytes (Text, Binary)
};

// One frontend message of a PgRequest. As in messageRecord (gateway/postgres/audit-format.ts) each
// message type sets only its own fields; the caller leaves the others at their defaults.
struct PgMessage {
  std::string_view type;  // "Query", "Parse", "Bind", … as frontendTypeName() names it
  bool withheld = false;
  std::string_view text;            // Query / Parse SQL, CopyFail message
  std::string_view statement_name;  // Parse, Bind, Describe/Close 'S'
  std::string_view portal;          // Bind, Execute, Describe/Close 'P'
  std::vector<Parameter> parameters;  // Bind parameters, FunctionCall arguments
  uint32_t max_rows = 0;              // Execute
  uint32_t function_oid = 0;          // FunctionCall
  std::vector<uint32_t> parameter_types;  // Parse
};

// The fields decisionRecord() (gateway/postgres/proxy-session.ts) sets, and their actions.
using eventrec::PolicyAction;
using eventrec::PolicyDecision;

struct ResultSummary {
  std::vector<std::string_view> columns;
  uint64_t rows = 0;
  std::vector<std::string_view> masked_columns;
};

// A Statement as finishRun() (gateway/postgres/proxy-session.ts) records it.
struct StatementOutcome {
  std::string_view text;
  // Written as parameterDisplay() shows them: NULL, \x<hex>, [redacted], or the text decoded.
  std::vector<Parameter> parameters;
  std::string_view command_tag;
  uint64_t rows = 0;
  std::string_view error_code;
  int64_t duration_nano = 0;
  std::string_view error_message;
  std::string_view via;  // "query", "extended", "function_call"
  std::string_view statement_name;
  std::string_view portal;
  std::optional<PolicyDecision> policy;  // present: written even when every field is a default
  std::optional<ResultSummary> result;   // likewise; finishRun always sets it
  std::vector<std::string_view> classes;
};

// The SessionEvent fields every record has.
using eventrec::EventHead;

// Appends the suffix of { time_unix_nano, event: { …head, pg_request: { messages } } } to `out`.
void append_request_record(std::vector<unsigned char>& out, int64_t record_time_unix_nano, const EventHead& event,
                           const PgMessage* messages, std::size_t message_count);

// Appends the suffix of { time_unix_nano, event: { …head, statement } } to `out`.
void append_outcome_record(std::vector<unsigned char>& out, int64_t record_time_unix_nano, const EventHead& event,
                           const StatementOutcome& statement);

// Appends the suffix of { time_unix_nano, event: { …head, policy: { action, rule, reason, statement,
// classes } } }: a decision other than allow, journaled when it is made.
void append_policy_record(std::vector<unsigned char>& out, int64_t record_time_unix_nano, const EventHead& event,
                          const PolicyDecision& decision, std::string_view statement, const std::vector<std::string_view>& classes);

// A COPY's transfer, journaled after its statement's outcome.
struct CopyTransfer {
  std::string_view direction;  // "in" or "out"
  uint64_t rows = 0;
  uint64_t bytes = 0;
  std::string_view statement;
  std::string_view error_code;
  std::string_view error_message;
};

// Appends the suffix of { time_unix_nano, event: { …head, copy: { … } } }.
void append_copy_record(std::vector<unsigned char>& out, int64_t record_time_unix_nano, const EventHead& event,
                        const CopyTransfer& copy);

// Appends the suffix of { time_unix_nano, event: { …head, error: { code, message } } } to `out`: an
// ErrorResponse no statement owns (answering a Bind, Describe, Close or Sync).
void append_error_record(std::vector<unsigned char>& out, int64_t record_time_unix_nano, const EventHead& event,
                         std::string_view code, std::string_view message);

}  // namespace gapwatch::pgrec

#endif  // GAPWATCH_PG_RECORDS_H
