// I/O: atomic writes, .npy, the CSV table writer, and PNG output.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "ift/data/csv.hpp"
#include "ift/io/atomic_file.hpp"
#include "ift/io/csv_writer.hpp"
#include "ift/io/npy.hpp"
#include "ift/io/png.hpp"

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;

namespace {

class IoFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) / ("ift_test_io_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  static std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  std::size_t files_in_dir() const {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::recursive_directory_iterator(dir_)) ++n;
    return n;
  }
  fs::path dir_;
};

// ---- Atomic writes --------------------------------------------------------------------------

TEST_F(IoFiles, AtomicWriteCreatesParentAndLeavesNoTemp) {
  const std::string path = file("sub/dir/out.txt");
  ift::io::write_file_atomically(path, [](std::ostream& out) { out << "hello\n"; });
  EXPECT_EQ(read_bytes(path), "hello\n");
  EXPECT_EQ(files_in_dir(), 3u);  // sub, sub/dir, out.txt: no temporary left behind
}

TEST_F(IoFiles, AtomicWriteFailureKeepsOldFile) {
  const std::string path = file("out.txt");
  ift::io::write_file_atomically(path, [](std::ostream& out) { out << "old"; });
  EXPECT_THROW(ift::io::write_file_atomically(path,
                                              [](std::ostream& out) {
                                                out << "partial";
                                                throw std::runtime_error("writer failed");
                                              }),
               std::runtime_error);
  EXPECT_EQ(read_bytes(path), "old");
  EXPECT_EQ(files_in_dir(), 1u);
  // A stream that goes bad is reported with the path.
  try {
    ift::io::write_file_atomically(path, [](std::ostream& out) { out.setstate(std::ios::badbit); });
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
  }
  EXPECT_EQ(read_bytes(path), "old");
  EXPECT_EQ(files_in_dir(), 1u);
  // Unwritable location (a file where a directory should be).
  try {
    ift::io::write_file_atomically(path + "/x.txt", [](std::ostream& out) { out << "x"; });
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
  }
}

// ---- npy ------------------------------------------------------------------------------------

TEST_F(IoFiles, NpyHeaderLayout) {
  ift::Matrix<double> m(3, 4);
  m.setRandom();
  ift::io::save_npy(file("m.npy"), m);
  const std::string bytes = read_bytes(file("m.npy"));
  ASSERT_GE(bytes.size(), 10u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const std::size_t header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
  EXPECT_EQ((10 + header_len) % 64, 0u);
  const std::string dict = bytes.substr(10, header_len);
  EXPECT_THAT(dict, HasSubstr("'descr': '<f8'"));
  EXPECT_THAT(dict, HasSubstr("'fortran_order': False"));
  EXPECT_THAT(dict, HasSubstr("'shape': (3, 4)"));
  EXPECT_EQ(dict.back(), '\n');
  EXPECT_EQ(bytes.size(), 10 + header_len + 12 * 8);
  // C order: the second value stored is m(0, 1).
  double second;
  std::memcpy(&second, bytes.data() + 10 + header_len + 8, 8);
  EXPECT_EQ(second, m(0, 1));

  ift::Vector<float> v(5);
  v.setRandom();
  ift::io::save_npy(file("v.npy"), v);
  const std::string vb = read_bytes(file("v.npy"));
  EXPECT_THAT(vb, HasSubstr("'descr': '<f4'"));
  EXPECT_THAT(vb, HasSubstr("'shape': (5,)"));
}

TEST_F(IoFiles, NpyRoundTrip) {
  ift::Matrix<double> m(3, 5);
  m.setRandom();
  m(1, 2) = 1.0 / 3.0;
  ift::io::save_npy(file("m.npy"), m);
  const ift::io::NpyArray a = ift::io::read_npy(file("m.npy"));
  EXPECT_EQ(a.dtype, "<f8");
  EXPECT_EQ(a.shape, (std::vector<ift::Index>{3, 5}));
  EXPECT_EQ(ift::io::load_npy_matrix<double>(file("m.npy")), m);  // bit-exact

  ift::Matrix<float> mf(4, 2);
  mf.setRandom();
  ift::io::save_npy(file("mf.npy"), mf);
  EXPECT_EQ(ift::io::read_npy(file("mf.npy")).dtype, "<f4");
  EXPECT_EQ(ift::io::load_npy_matrix<float>(file("mf.npy")), mf);
  EXPECT_EQ(ift::io::load_npy_matrix<double>(file("mf.npy")), mf.cast<double>());

  ift::Vector<double> v(7);
  v.setRandom();
  ift::io::save_npy(file("v.npy"), v);
  EXPECT_EQ(ift::io::read_npy(file("v.npy")).shape, (std::vector<ift::Index>{7}));
  EXPECT_EQ(ift::io::load_npy_vector<double>(file("v.npy")), v);
  EXPECT_EQ(ift::io::load_npy_matrix<double>(file("v.npy")), ift::Matrix<double>(v));

  ift::Vector<float> vf(3);
  vf << 1.5f, -2.25f, 3.0e-8f;
  ift::io::save_npy(file("vf.npy"), vf);
  EXPECT_EQ(ift::io::load_npy_vector<float>(file("vf.npy")), vf);

  ift::Vector<double> empty(0);
  ift::io::save_npy(file("e.npy"), empty);
  EXPECT_EQ(ift::io::load_npy_vector<double>(file("e.npy")).size(), 0);
}

TEST_F(IoFiles, NpyErrors) {
  EXPECT_THAT([&] {
    try {
      ift::io::read_npy(file("missing.npy"));
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string();
  }(), HasSubstr(file("missing.npy")));
  std::ofstream(file("junk.npy")) << "not numpy at all";
  EXPECT_THROW(ift::io::read_npy(file("junk.npy")), std::runtime_error);
  ift::Matrix<double> m = ift::Matrix<double>::Ones(2, 2);
  ift::io::save_npy(file("m.npy"), m);
  std::string bytes = read_bytes(file("m.npy"));
  bytes.pop_back();
  std::ofstream(file("short.npy"), std::ios::binary) << bytes;
  try {
    ift::io::read_npy(file("short.npy"));
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), AllOf(HasSubstr(file("short.npy")), HasSubstr("expected 32 bytes"), HasSubstr("found 31")));
  }
  EXPECT_THROW(ift::io::load_npy_vector<double>(file("m.npy")), std::runtime_error);  // 2 x 2 is no vector
}

// numpy itself must load what we write (and we must load what numpy writes).
TEST_F(IoFiles, NpyAgreesWithNumpy) {
  if (std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 with numpy not available";
  ift::Matrix<double> m(2, 3);
  m << 1, 2, 3, 4, 5, 6.5;
  ift::io::save_npy(file("m.npy"), m);
  ift::Vector<float> v(3);
  v << 0.5f, -1.0f, 2.0f;
  ift::io::save_npy(file("v.npy"), v);
  const std::string script =
      "import numpy as np, sys\n"
      "m = np.load(sys.argv[1]); v = np.load(sys.argv[2])\n"
      "assert m.dtype == np.float64 and m.shape == (2, 3), (m.dtype, m.shape)\n"
      "assert (m == np.array([[1, 2, 3], [4, 5, 6.5]])).all(), m\n"
      "assert v.dtype == np.float32 and v.shape == (3,) and (v == [0.5, -1, 2]).all(), v\n"
      "np.save(sys.argv[3], np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))\n";
  std::ofstream(file("check.py")) << script;
  const std::string cmd = "/usr/bin/python3 " + file("check.py") + " " + file("m.npy") + " " + file("v.npy") + " " +
                          file("np.npy");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  ift::Matrix<float> expected(2, 3);
  expected << 0, 1, 2, 3, 4, 5;
  EXPECT_EQ(ift::io::load_npy_matrix<float>(file("np.npy")), expected);
}

// ---- CSV writer -----------------------------------------------------------------------------

TEST_F(IoFiles, CsvWriterRendersAndRoundTrips) {
  ift::io::CsvWriter w(file("out/table.csv"), {"step", "method", "loss", "acc"});
  w.add_comment("app: test\nlambda0 = 0.001");
  const double third = 1.0 / 3.0;
  w.add_row({0, "cg, restarted", third, 0.5f});
  w.add_row({std::size_t{1}, "say \"hi\"", std::numeric_limits<double>::quiet_NaN(), true});
  w.add_row({2LL, "inf", -std::numeric_limits<double>::infinity(), 1e-300});
  EXPECT_EQ(w.num_rows(), 3u);
  const std::string expected =
      "# app: test\n"
      "# lambda0 = 0.001\n"
      "step,method,loss,acc\n"
      "0,\"cg, restarted\",0.33333333333333331,0.5\n"
      "1,\"say \"\"hi\"\"\",,1\n"
      "2,inf,,1e-300\n";
  EXPECT_EQ(w.render(), expected);
  EXPECT_FALSE(fs::exists(file("out/table.csv")));
  w.save();
  EXPECT_EQ(read_bytes(file("out/table.csv")), expected);
  EXPECT_EQ(std::strtod("0.33333333333333331", nullptr), third);  // %.17g round-trips

  // Long runs: append and save after each row.
  w.add_row_and_save({3, "x", 2.0, 0.25});
  EXPECT_THAT(read_bytes(file("out/table.csv")), HasSubstr("3,x,2,0.25\n"));
  EXPECT_THROW(w.add_row({1, 2}), std::invalid_argument);
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(file("out"))) ++n;
  EXPECT_EQ(n, 1u);  // no temporary left
}

TEST_F(IoFiles, CsvWriterOutputReadsBack) {
  ift::io::CsvWriter w(file("t.csv"), {"x1", "x2", "label"});
  w.add_comment("seed = 3");
  w.add_row({0.1, -2.5e-7, 1});
  w.add_row({1e10, 3.0, 0});
  w.save();
  const auto d = ift::load_csv<double>(file("t.csv"));
  ASSERT_EQ(d.size(), 2);
  EXPECT_EQ(d.X(0, 0), 0.1);
  EXPECT_EQ(d.X(0, 1), -2.5e-7);
  EXPECT_EQ(d.X(1, 0), 1e10);
  EXPECT_EQ(d.labels(0), 1);
}

// ---- PNG ------------------------------------------------------------------------------------

struct Png {
  std::uint32_t width = 0, height = 0;
  int bit_depth = -1, colour_type = -1, compression = -1, filter = -1, interlace = -1;
  std::string idat;
  std::vector<std::string> chunk_types;
};

std::uint32_t be32(const std::string& s, std::size_t at) {
  return (std::uint32_t(static_cast<unsigned char>(s[at])) << 24) |
         (std::uint32_t(static_cast<unsigned char>(s[at + 1])) << 16) |
         (std::uint32_t(static_cast<unsigned char>(s[at + 2])) << 8) | std::uint32_t(static_cast<unsigned char>(s[at + 3]));
}

// Parses a PNG, checking the signature and every chunk's CRC.
Png parse_png(const std::string& bytes) {
  Png png;
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  std::size_t at = 8;
  while (at + 12 <= bytes.size()) {
    const std::uint32_t len = be32(bytes, at);
    const std::string type = bytes.substr(at + 4, 4);
    const std::string data = bytes.substr(at + 8, len);
    const std::uint32_t crc = be32(bytes, at + 8 + len);
    const std::string body = type + data;
    EXPECT_EQ(crc, crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size())))
        << "CRC of chunk " << type;
    png.chunk_types.push_back(type);
    if (type == "IHDR") {
      EXPECT_EQ(len, 13u);
      png.width = be32(data, 0);
      png.height = be32(data, 4);
      png.bit_depth = static_cast<unsigned char>(data[8]);
      png.colour_type = static_cast<unsigned char>(data[9]);
      png.compression = static_cast<unsigned char>(data[10]);
      png.filter = static_cast<unsigned char>(data[11]);
      png.interlace = static_cast<unsigned char>(data[12]);
    } else if (type == "IDAT") {
      png.idat += data;
    }
    at += 12 + len;
  }
  EXPECT_EQ(at, bytes.size());
  return png;
}

// Decompressed scanlines without their filter bytes (which must be 0: None).
std::vector<std::uint8_t> png_pixels(const Png& png) {
  std::string raw(static_cast<std::size_t>(png.height) * (png.width + 1), '\0');
  uLongf size = raw.size();
  EXPECT_EQ(uncompress(reinterpret_cast<Bytef*>(raw.data()), &size, reinterpret_cast<const Bytef*>(png.idat.data()),
                       static_cast<uLong>(png.idat.size())),
            Z_OK);
  EXPECT_EQ(size, raw.size());
  std::vector<std::uint8_t> pixels;
  for (std::uint32_t y = 0; y < png.height; ++y) {
    EXPECT_EQ(raw[y * (png.width + 1)], 0) << "filter byte of row " << y;
    for (std::uint32_t x = 0; x < png.width; ++x)
      pixels.push_back(static_cast<std::uint8_t>(raw[y * (png.width + 1) + 1 + x]));
  }
  return pixels;
}

TEST_F(IoFiles, PngGray8) {
  const ift::Index w = 5, h = 3;
  std::vector<std::uint8_t> pixels;
  for (int i = 0; i < w * h; ++i) pixels.push_back(static_cast<std::uint8_t>(i * 17));
  ift::io::write_png_gray8(file("a.png"), pixels, w, h);
  const Png png = parse_png(read_bytes(file("a.png")));
  EXPECT_EQ(png.chunk_types, (std::vector<std::string>{"IHDR", "IDAT", "IEND"}));
  EXPECT_EQ(png.width, 5u);
  EXPECT_EQ(png.height, 3u);
  EXPECT_EQ(png.bit_depth, 8);
  EXPECT_EQ(png.colour_type, 0);
  EXPECT_EQ(png.compression, 0);
  EXPECT_EQ(png.filter, 0);
  EXPECT_EQ(png.interlace, 0);
  EXPECT_EQ(png_pixels(png), pixels);
  EXPECT_THROW(ift::io::write_png_gray8(file("b.png"), pixels, 4, 3), std::invalid_argument);
}

TEST_F(IoFiles, PngImageGrid) {
  // Three 2 x 3 images, 2 grid columns, padding 1: (2·3 + 3) × (2·2 + 3) = 9 × 7 pixels.
  ift::Matrix<double> images(3, 6);
  images << 0, 1, 2, 3, 4, 5,      //
      -1, -1, -1, -1, -1, 11,      //
      std::nan(""), 5, 5, 5, 5, 5;  // NaN maps to 0
  ift::io::write_image_grid_png(file("grid.png"), images, 2, 3, 2, ift::io::PngScaling::MinMaxGlobal);
  const Png png = parse_png(read_bytes(file("grid.png")));
  ASSERT_EQ(png.width, 9u);
  ASSERT_EQ(png.height, 7u);
  const std::vector<std::uint8_t> px = png_pixels(png);
  auto at = [&](int x, int y) { return static_cast<int>(px[static_cast<std::size_t>(y * 9 + x)]); };
  EXPECT_EQ(at(0, 0), 0);             // padding
  EXPECT_EQ(at(1, 1), 21);            // image 0 pixel (0,0) = 0: (0 + 1) / 12 · 255 = 21.25
  EXPECT_EQ(at(3, 2), 128);           // image 0 pixel (1,2) = 5: 6/12 · 255 = 127.5 -> 128
  EXPECT_EQ(at(5, 1), 0);             // image 1 pixel (0,0) = -1 = global min
  EXPECT_EQ(at(7, 2), 255);           // image 1 pixel (1,2) = 11 = global max
  EXPECT_EQ(at(1, 4), 0);             // image 2 pixel (0,0) = NaN
  EXPECT_EQ(at(2, 4), 128);           // image 2 pixel (0,1) = 5: 6/12 · 255 = 127.5 -> 128

  // Clip with scale 2 and no padding: values already in [0, 1].
  ift::Matrix<float> one(1, 4);
  one << -0.5f, 0.0f, 0.5f, 2.0f;
  ift::io::write_image_grid_png(file("clip.png"), one, 2, 2, 0, ift::io::PngScaling::Clip, 0, 2);
  const Png clip = parse_png(read_bytes(file("clip.png")));
  ASSERT_EQ(clip.width, 4u);
  ASSERT_EQ(clip.height, 4u);
  const std::vector<std::uint8_t> cp = png_pixels(clip);
  EXPECT_EQ(cp, (std::vector<std::uint8_t>{0, 0, 0, 0, 0, 0, 0, 0, 128, 128, 255, 255, 128, 128, 255, 255}));
  EXPECT_THROW(ift::io::write_image_grid_png(file("bad.png"), one, 3, 3), std::invalid_argument);
}

}  // namespace
