#include <doctest/doctest.h>

#include "cli/format.h"

using namespace sbx::cli;

TEST_SUITE("cli.format") {

TEST_CASE("a table aligns its columns on the widest cell and does not pad the last one") {
  Table t({"ID", "NAME", "STATE"});
  t.add_row({"a1b2c3", "web", "running"});
  t.add_row({"d4", "database-primary", "exited (0)"});
  CHECK(t.render() ==
        "ID       NAME               STATE\n"
        "a1b2c3   web                running\n"
        "d4       database-primary   exited (0)\n");
  CHECK(t.rows() == 2);
}

TEST_CASE("a table with no rows prints its header; short rows are padded, empty last cells trimmed") {
  Table t({"A", "B"});
  CHECK(t.render() == "A   B\n");
  t.add_row({"x"});
  CHECK(t.render() == "A   B\nx\n");
}

TEST_CASE("widths count characters, not bytes") {
  CHECK(display_width("héllo") == 5);
  Table t({"N", "X"});
  t.add_row({"é", "1"});
  t.add_row({"ab", "2"});
  CHECK(t.render() == "N    X\né    1\nab   2\n");
}

TEST_CASE("long cells are cut with an ellipsis") {
  CHECK(ellipsize("short", 10) == "short");
  CHECK(ellipsize("exactly10!", 10) == "exactly10!");
  CHECK(ellipsize("sleep 1000000000", 10) == "sleep 1...");
  CHECK(ellipsize("ééééééé", 5) == "éé...");
  CHECK(ellipsize("abcdef", 2) == "..");
}

TEST_CASE("fields line up after their keys") {
  CHECK(render_fields({{"Version", "0.1.0"}, {"PID", "42"}}) == "Version:  0.1.0\nPID:      42\n");
}

TEST_CASE("RFC 3339 times parse with and without fractions and offsets") {
  CHECK(*parse_time("1970-01-01T00:00:00Z") == 0);
  CHECK(*parse_time("1970-01-01T00:00:01.5Z") == 1500);
  CHECK(*parse_time("2026-11-22T10:04:05.123Z") == 1795341845123);
  CHECK(*parse_time("1970-01-01T01:00:00+01:00") == 0);
  CHECK(*parse_time("1970-01-01T00:00:00-00:30") == 1800000);
  CHECK_FALSE(parse_time("2026-11-22").has_value());
  CHECK_FALSE(parse_time("2026-11-22T10:04:05").has_value());
  CHECK_FALSE(parse_time("2026-13-22T10:04:05Z").has_value());
  CHECK_FALSE(parse_time("2026-11-22T10:04:05Zjunk").has_value());
}

TEST_CASE("times are shown as how long ago") {
  CHECK(format_ago(0, 500) == "just now");
  CHECK(format_ago(0, 1000) == "1 second ago");
  CHECK(format_ago(0, 45'000) == "45 seconds ago");
  CHECK(format_ago(0, 60'000) == "1 minute ago");
  CHECK(format_ago(0, 3 * 3600'000) == "3 hours ago");
  CHECK(format_ago(0, 5 * 86400'000LL) == "5 days ago");
  json sb = {{"created_at", "1970-01-01T00:00:00Z"}, {"started_at", nullptr}};
  CHECK(ago_field(sb, "created_at", 120'000) == "2 minutes ago");
  CHECK(ago_field(sb, "started_at", 0) == "-");
  CHECK(ago_field(sb, "missing", 0) == "-");
  CHECK(ago_field(json{{"t", "yesterday"}}, "t", 0) == "yesterday");
}

TEST_CASE("durations are compact") {
  CHECK(format_duration_ms(0) == "0ms");
  CHECK(format_duration_ms(850) == "850ms");
  CHECK(format_duration_ms(1234) == "1.23s");
  CHECK(format_duration_ms(125'000) == "2m05s");
  CHECK(format_duration_ms(3'723'000) == "1h02m");
  CHECK(format_duration_ms(2 * 86'400'000LL + 3 * 3'600'000) == "2d03h");
  CHECK(format_duration_ms(-1) == "-");
}

TEST_CASE("commands are shown as a shell would need them typed") {
  CHECK(format_command(json{"sh", "-c", "echo hi; exit 3"}) == "sh -c 'echo hi; exit 3'");
  CHECK(format_command(json{"echo", "it's", ""}) == "echo 'it'\\''s' ''");
  CHECK(format_command(json{"/bin/ls", "-la", "a=b,c:d"}) == "/bin/ls -la a=b,c:d");
  CHECK(format_command(nullptr) == "-");
}

TEST_CASE("cells and members never abort on unexpected JSON") {
  CHECK(cell(nullptr) == "-");
  CHECK(cell("x") == "x");
  CHECK(cell(42) == "42");
  CHECK(cell(true) == "true");
  CHECK(field(json::array(), "x") == "-");
  CHECK(field(json{{"x", nullptr}}, "x") == "-");
  CHECK(member(json("str"), "x").is_null());
  CHECK(string_member(json{{"x", 1}}, "x").empty());
  CHECK(flag_member(json{{"x", true}}, "x"));
  CHECK_FALSE(flag_member(json{{"x", "true"}}, "x"));
  CHECK(size_field(json(1536)) == "1.5K");
  CHECK(size_field(json(512ull << 20)) == "512M");
  CHECK(size_field(nullptr) == "-");
}

TEST_CASE("sandbox states say how an exited sandbox ended") {
  CHECK(format_state({{"state", "running"}}) == "running");
  CHECK(format_state({{"state", "exited"}, {"exit_code", 0}, {"exit_signal", nullptr}}) == "exited (0)");
  CHECK(format_state({{"state", "exited"}, {"exit_code", nullptr}, {"exit_signal", 9}}) == "exited (signal 9)");
  CHECK(format_state({{"state", "exited"}, {"exit_code", nullptr}, {"exit_signal", 9}, {"oom_killed", true}}) ==
        "exited (signal 9, OOM)");
  CHECK(format_state({{"state", "exited"}}) == "exited");
}

TEST_CASE("exec ends, labels and events read as text") {
  CHECK(format_exec_end({{"exit_code", 0}}) == "0");
  CHECK(format_exec_end({{"exit_code", nullptr}, {"signal", 9}, {"oom_killed", true}}) == "signal 9, OOM");
  CHECK(format_exec_end({{"exit_code", nullptr}, {"signal", 9}, {"timed_out", true}}) == "timed out");
  CHECK(format_exec_end({{"exit_code", nullptr}, {"signal", nullptr}}) == "-");
  CHECK(format_exec_end({{"exit_code", nullptr}, {"signal", nullptr}, {"error", "exec 'x': ENOENT"}}) == "error");
  CHECK(format_labels({{"a", "1"}, {"b", "2"}}) == "a=1,b=2");
  CHECK(format_labels(json::object()) == "-");
  json ev = {{"seq", 7},       {"type", "exited"}, {"id", "a1b2"}, {"name", "web"},
             {"time", "2026-11-22T10:04:05.123Z"}, {"details", {{"exit_code", 0}, {"signal", nullptr}}}};
  CHECK(format_event(ev) == "2026-11-22T10:04:05.123Z  exited     a1b2          web exit_code=0");
}

TEST_CASE("image ids are shown as 12 hex digits without the algorithm") {
  CHECK(short_image_id("sha256:0123456789abcdef0123") == "0123456789ab");
  CHECK(short_image_id("0123456789abcdef") == "0123456789ab");
  CHECK(short_image_id("abc") == "abc");
  CHECK(short_image_id("") == "");
}

TEST_CASE("import progress shows the phase, the layer, a percent when the total is known, bytes and rate") {
  json p = {{"phase", "unpack"}, {"layer", 2}, {"layers", 3}, {"bytes", 1536}, {"total", 3072}};
  CHECK(format_progress(p, -1) == "unpack  layer 2/3   50%  1.5K/3K");
  CHECK(format_progress(p, 5.5 * 1024 * 1024) == "unpack  layer 2/3   50%  1.5K/3K  5.5 MB/s");
  json upload = {{"phase", "upload"}, {"layer", 0}, {"layers", 0}, {"bytes", 10 << 20}, {"total", 0}};
  CHECK(format_progress(upload, 0) == "upload  10M  0.0 MB/s");
  CHECK(format_progress({{"phase", "read"}, {"bytes", 200}, {"total", 100}}, -1) == "read    100%  200/100");
  CHECK(format_progress(json("junk"), -1) == "-       0");
}

}  // TEST_SUITE
