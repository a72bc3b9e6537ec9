#include "session-event.h"

namespace gapwatch::eventrec {

using protowire::delimited;
using protowire::varint_field;

void write_policy_decision(protowire::FieldWriter& w, uint32_t tag, const PolicyDecision& decision,
                           std::string_view statement, const std::vector<std::string_view>& classes) {
  const std::size_t at = w.begin(tag);
  w.integer(varint_field(1), static_cast<uint32_t>(decision.action));  // PolicyDecision.action
  w.string(delimited(2), decision.rule);                                // .rule
  w.string(delimited(3), decision.reviewer);                            // .reviewer
  w.string(delimited(4), decision.reason);                              // .reason
  w.string(delimited(5), decision.review_id);                           // .review_id
  w.string(delimited(6), statement);                                    // .statement
  for (const std::string_view name : classes) w.entry(delimited(7), name);  // .classes
  w.end(at);
}

std::size_t begin_event(protowire::FieldWriter& w, int64_t record_time_unix_nano, const EventHead& event) {
  w.integer(varint_field(5), static_cast<uint64_t>(record_time_unix_nano));  // JournalRecord.time_unix_nano
  const std::size_t at = w.begin(delimited(11));                             // JournalRecord.event
  w.string(delimited(1), event.session_id);                                  // SessionEvent.session_id
  w.integer(varint_field(2), event.event_seq);                               // .event_seq
  w.integer(varint_field(3), static_cast<uint64_t>(event.time_unix_nano));   // .time_unix_nano
  return at;
}

}  // namespace gapwatch::eventrec
