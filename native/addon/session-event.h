#ifndef GAPWATCH_SESSION_EVENT_H
#define GAPWATCH_SESSION_EVENT_H

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "proto-writer.h"

// What every gateway's journal records share (proto/gapwatch/v1/journal.proto, session.proto): a
// record's suffix up to its SessionEvent's detail, and the PolicyDecision message. Used by the
// record encoders of the native data paths (pg-records.cc, http-records.cc).
namespace gapwatch::eventrec {

// The SessionEvent fields every record has.
struct EventHead {
  std::string_view session_id;  // written as UTF-8
  uint64_t event_seq = 0;
  int64_t time_unix_nano = 0;
};

// Values as in proto/gapwatch/v1/session.proto.
enum class PolicyAction : uint32_t {
  Unspecified = 0,
  Allow = 1,
  Deny = 2,
  Approved = 3,
  Rejected = 4,
  Mask = 5,
  Review = 6,
  TimedOut = 7,
};

// A PolicyDecision's fields but `statement` and `classes`; strings are written as UTF-8.
struct PolicyDecision {
  PolicyAction action = PolicyAction::Unspecified;
  std::string_view rule;
  std::string_view reviewer;   // policy events of a review only
  std::string_view reason;
  std::string_view review_id;  // policy events of a review only
};

// Writes the record's time_unix_nano (field 5), then starts body.event (field 11) and writes its
// head; returns where the event's content starts, for FieldWriter::end() once the detail is written.
std::size_t begin_event(protowire::FieldWriter& w, int64_t record_time_unix_nano, const EventHead& event);

// Writes a PolicyDecision as field `tag`, present (so written even when every field is a default).
void write_policy_decision(protowire::FieldWriter& w, uint32_t tag, const PolicyDecision& decision,
                           std::string_view statement, const std::vector<std::string_view>& classes);

}  // namespace gapwatch::eventrec

#endif  // GAPWATCH_SESSION_EVENT_H
