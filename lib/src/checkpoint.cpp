#include "ift/checkpoint.hpp"

#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "ift/io/atomic_file.hpp"
#include "ift/version.hpp"

namespace ift {

std::uint64_t checkpoint_checksum(const void* data, std::size_t n) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (std::size_t i = 0; i < n; ++i) {
    h ^= bytes[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

namespace {

constexpr char kMagic[] = "IFTCKPT\n";
constexpr char kEnd[] = "END\n";


// Raw bytes in native order: doubles round-trip exactly, which a bitwise resume needs.
class Writer {
 public:
  explicit Writer(std::ostream& out) : out_(out) {}
  template <class T>
  void pod(const T& v) {
    out_.write(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void u64(std::uint64_t v) { pod(v); }
  void str(const std::string& s) {
    u64(s.size());
    out_.write(s.data(), static_cast<std::streamsize>(s.size()));
  }
  template <class S>
  void vec(const Vector<S>& v) {
    u64(static_cast<std::uint64_t>(v.size()));
    out_.write(reinterpret_cast<const char*>(v.data()),
               static_cast<std::streamsize>(sizeof(S) * static_cast<std::size_t>(v.size())));
  }

 private:
  std::ostream& out_;
};

class Reader {
 public:
  Reader(const std::string& bytes, const std::string& path) : bytes_(bytes), path_(path) {}
  void raw(void* dst, std::size_t n) {
    if (n > bytes_.size() - pos_) fail("truncated");
    if (n == 0) return;  // an empty vector's data() is null: memcpy(nullptr, …, 0) is UB
    std::memcpy(dst, bytes_.data() + pos_, n);
    pos_ += n;
  }
  template <class T>
  T pod() {
    T v;
    raw(&v, sizeof v);
    return v;
  }
  std::uint64_t u64() { return pod<std::uint64_t>(); }
  std::size_t length() {
    const std::uint64_t n = u64();
    if (n > bytes_.size() - pos_) fail("truncated (a length runs past the end)");
    return static_cast<std::size_t>(n);
  }
  std::string str() {
    const std::size_t n = length();
    std::string s(bytes_.data() + pos_, n);
    pos_ += n;
    return s;
  }
  template <class S>
  Vector<S> vec() {
    const std::uint64_t n = u64();
    if (n > (bytes_.size() - pos_) / sizeof(S)) fail("truncated (a vector runs past the end)");
    Vector<S> v(static_cast<Index>(n));
    raw(v.data(), sizeof(S) * n);
    return v;
  }
  bool at(const char* token) {
    const std::size_t n = std::strlen(token);
    if (bytes_.compare(pos_, n, token) != 0) return false;
    pos_ += n;
    return true;
  }
  bool done() const { return pos_ == bytes_.size(); }
  std::size_t remaining() const { return bytes_.size() - pos_; }
  [[noreturn]] void fail(const std::string& why) const {
    throw std::runtime_error("checkpoint " + path_ + ": " + why);
  }

 private:
  const std::string& bytes_;
  const std::string& path_;
  std::size_t pos_ = 0;
};

void write_metrics(Writer& w, const Metrics& m) {
  w.pod(m.train_loss), w.pod(m.val_loss), w.pod(m.test_loss);
  w.pod(m.train_accuracy), w.pod(m.val_accuracy), w.pod(m.test_accuracy);
  w.pod(static_cast<std::uint8_t>(m.has_accuracy)), w.pod(static_cast<std::uint8_t>(m.has_test));
}

Metrics read_metrics(Reader& r) {
  Metrics m;
  m.train_loss = r.pod<double>(), m.val_loss = r.pod<double>(), m.test_loss = r.pod<double>();
  m.train_accuracy = r.pod<double>(), m.val_accuracy = r.pod<double>();
  m.test_accuracy = r.pod<double>();
  m.has_accuracy = r.pod<std::uint8_t>() != 0;
  m.has_test = r.pod<std::uint8_t>() != 0;
  return m;
}

}  // namespace

template <class S>
void save_checkpoint(const std::string& path, const Checkpoint<S>& c) {
  std::ostringstream out;
  {
    Writer w(out);
    out.write(kMagic, sizeof kMagic - 1);
    w.pod(kCheckpointFormatVersion);
    w.pod(static_cast<std::uint32_t>(sizeof(S)));
    w.str(version());
    w.str(c.fingerprint);
    w.pod(static_cast<std::int64_t>(c.step));
    w.pod(static_cast<std::uint8_t>(c.finished));
    w.str(c.finish_message);
    w.vec(c.w);
    w.vec(c.lambda);
    for (const OptimizerState<S>* s : {&c.inner, &c.outer}) {
      w.vec(s->first);
      w.vec(s->second);
      w.pod(s->steps);
    }
    w.str(c.rng_state);
    w.u64(c.records.size());
    for (const HyperStepRecord& r : c.records) {
      w.pod(static_cast<std::int64_t>(r.step));
      write_metrics(w, r.metrics);
      w.pod(r.hypergradient_norm);
      w.str(r.status);
      w.pod(static_cast<std::int64_t>(r.iterations));
      w.pod(static_cast<std::int64_t>(r.hvps));
      w.pod(r.hypergradient_seconds);
      w.pod(r.elapsed_seconds);
      w.str(r.message);
      w.pod(r.alpha);
      w.pod(r.relative_residual);
      w.pod(static_cast<std::int64_t>(r.inner_iterations));
      w.pod(r.inner_gradient_norm);
      w.str(r.inner_status);
      w.pod(static_cast<std::uint8_t>(r.final_evaluation));
    }
    w.vec(c.solver_v);
    w.pod(c.solver_alpha);
    w.pod(c.solver_lambda_max);
    w.pod(c.solver_uses);
    w.u64(c.solver_lbfgs_s.size());
    for (std::size_t i = 0; i < c.solver_lbfgs_s.size(); ++i) {
      w.vec(c.solver_lbfgs_s[i]);
      w.vec(c.solver_lbfgs_y.at(i));
    }
    w.vec(c.solver_lbfgs_point);
    w.pod(c.solver_lbfgs_memory);
    w.u64(c.solver_ritz_values.size());
    for (std::size_t i = 0; i < c.solver_ritz_values.size(); ++i) {
      w.vec(c.solver_ritz_vectors.at(i));
      w.pod(c.solver_ritz_values[i]);
    }
    w.pod(c.solver_ritz_scale);
    out.write(kEnd, sizeof kEnd - 1);
  }
  const std::string bytes = out.str();
  const std::uint64_t sum = checkpoint_checksum(bytes.data(), bytes.size());
  io::write_file_atomically(path, [&](std::ostream& file) {
    file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    file.write(reinterpret_cast<const char*>(&sum), sizeof sum);
  });
}

template <class S>
Checkpoint<S> load_checkpoint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("checkpoint " + path + ": cannot open the file");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  std::string bytes = buffer.str();
  {
    Reader head(bytes, path);
    if (!head.at(kMagic)) head.fail("not an ift checkpoint (bad magic bytes)");
    const auto format = head.pod<std::uint32_t>();
    if (format != kCheckpointFormatVersion)
      head.fail("format version " + std::to_string(format) + ", this build reads version " +
                std::to_string(kCheckpointFormatVersion));
  }
  // The content is trusted only when its checksum (the last 8 bytes) matches: a damaged file is
  // refused before any of it is used.
  std::uint64_t stored = 0;
  if (bytes.size() < sizeof stored)
    throw std::runtime_error("checkpoint " + path + ": truncated");
  std::memcpy(&stored, bytes.data() + bytes.size() - sizeof stored, sizeof stored);
  bytes.resize(bytes.size() - sizeof stored);
  if (checkpoint_checksum(bytes.data(), bytes.size()) != stored)
    throw std::runtime_error("checkpoint " + path +
                             ": damaged (its checksum does not match its content: a truncated "
                             "or altered file); start afresh without --resume");
  Reader r(bytes, path);
  r.at(kMagic);
  r.pod<std::uint32_t>();
  const auto scalar = r.pod<std::uint32_t>();
  if (scalar != sizeof(S))
    r.fail("written with " + std::to_string(scalar) + "-byte scalars, expected " +
           std::to_string(sizeof(S)));
  const std::string written_by = r.str();
  if (written_by != version())
    r.fail("written by ift " + written_by + ", this is ift " + version() +
           " (results could differ); start afresh without --resume");
  Checkpoint<S> c;
  c.fingerprint = r.str();
  c.step = static_cast<Index>(r.pod<std::int64_t>());
  c.finished = r.pod<std::uint8_t>() != 0;
  c.finish_message = r.str();
  c.w = r.vec<S>();
  c.lambda = r.vec<S>();
  for (OptimizerState<S>* s : {&c.inner, &c.outer}) {
    s->first = r.vec<S>();
    s->second = r.vec<S>();
    s->steps = r.pod<std::int64_t>();
  }
  c.rng_state = r.str();
  // Each record takes at least 163 bytes (its fixed-size fields and empty strings): a count the
  // rest of the file cannot hold is refused before it sizes an allocation.
  constexpr std::size_t kMinRecordBytes = 163;
  const std::uint64_t n = r.u64();
  if (n > r.remaining() / kMinRecordBytes) r.fail("truncated (implausible record count)");
  c.records.resize(static_cast<std::size_t>(n));
  for (HyperStepRecord& rec : c.records) {
    rec.step = static_cast<Index>(r.pod<std::int64_t>());
    rec.metrics = read_metrics(r);
    rec.hypergradient_norm = r.pod<double>();
    rec.status = r.str();
    rec.iterations = static_cast<Index>(r.pod<std::int64_t>());
    rec.hvps = static_cast<Index>(r.pod<std::int64_t>());
    rec.hypergradient_seconds = r.pod<double>();
    rec.elapsed_seconds = r.pod<double>();
    rec.message = r.str();
    rec.alpha = r.pod<double>();
    rec.relative_residual = r.pod<double>();
    rec.inner_iterations = static_cast<Index>(r.pod<std::int64_t>());
    rec.inner_gradient_norm = r.pod<double>();
    rec.inner_status = r.str();
    rec.final_evaluation = r.pod<std::uint8_t>() != 0;
  }
  c.solver_v = r.vec<S>();
  c.solver_alpha = r.pod<double>();
  c.solver_lambda_max = r.pod<double>();
  c.solver_uses = r.pod<std::int64_t>();
  const std::uint64_t pairs = r.u64();
  if (pairs > bytes.size()) r.fail("truncated (implausible number of L-BFGS pairs)");
  for (std::uint64_t i = 0; i < pairs; ++i) {
    c.solver_lbfgs_s.push_back(r.vec<S>());
    c.solver_lbfgs_y.push_back(r.vec<S>());
  }
  c.solver_lbfgs_point = r.vec<S>();
  c.solver_lbfgs_memory = r.pod<std::int64_t>();
  const std::uint64_t ritz = r.u64();
  if (ritz > bytes.size()) r.fail("truncated (implausible number of Ritz pairs)");
  for (std::uint64_t i = 0; i < ritz; ++i) {
    c.solver_ritz_vectors.push_back(r.vec<S>());
    c.solver_ritz_values.push_back(r.pod<double>());
  }
  c.solver_ritz_scale = r.pod<double>();
  if (!r.at(kEnd) || !r.done()) r.fail("truncated or trailing bytes after the records");
  return c;
}

template void save_checkpoint<float>(const std::string&, const Checkpoint<float>&);
template void save_checkpoint<double>(const std::string&, const Checkpoint<double>&);
template Checkpoint<float> load_checkpoint<float>(const std::string&);
template Checkpoint<double> load_checkpoint<double>(const std::string&);

}  // namespace ift
