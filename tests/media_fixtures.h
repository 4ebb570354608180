// Real media for the IMAGE / AUDIO / VIDEO tests, made once per test run by
// tools/make_media_fixtures.sh (ffmpeg + espeak-ng) into a fresh temporary directory
// that is removed at exit. Tests run from the repository root (as `make test` does).
//
//   const MediaFixtures& fx = media_fixtures();
//   REQUIRE_MESSAGE(fx.ok, fx.log);
//   load_audio(fx.path("speech.mp3"));
#pragma once
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <unistd.h>

struct MediaFixtures {
  bool ok = false;
  std::string dir, log;
  std::string path(const std::string& name) const { return dir + "/" + name; }

  MediaFixtures() {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/mm-media-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) {
      log = "cannot create a temporary directory from " + tmpl;
      return;
    }
    dir = buf.data();
    const std::string script = "tools/make_media_fixtures.sh";
    if (!std::filesystem::exists(script)) {
      log = script + " not found: run the tests from the repository root";
      return;
    }
    const std::string logfile = dir + "/make.log";
    const std::string cmd = "sh " + script + " '" + dir + "' >'" + logfile + "' 2>&1";
    const int rc = std::system(cmd.c_str());
    std::ifstream f(logfile);
    log = std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    ok = rc == 0;
    if (!ok) log = "tools/make_media_fixtures.sh failed (needs the ffmpeg and espeak-ng binaries): " + log;
  }
  ~MediaFixtures() {
    std::error_code ec;
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
  }
};

inline const MediaFixtures& media_fixtures() {
  static const MediaFixtures fx;  // one generation per test binary, shared by all files
  return fx;
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
