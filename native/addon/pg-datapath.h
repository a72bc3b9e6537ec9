#ifndef GAPWATCH_PG_DATAPATH_H
#define GAPWATCH_PG_DATAPATH_H

#include <napi.h>

namespace gapwatch {

// Adds `PgDataPath` (class) to the addon's exports: the PostgreSQL gateway's native session loop
// (pg-datapath.cc).
void register_pg_datapath(Napi::Env env, Napi::Object exports);

// The JournalChain behind a JS JournalChain object (gateway-addon.cc), for the data path to append to.
class JournalChain;
JournalChain* unwrap_journal_chain(Napi::Value value);

}  // namespace gapwatch

#endif
