// Data readers: IDX (raw and gzipped), CSV, synthetic sets, and the Fashion-MNIST / MNIST splits.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <Eigen/QR>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "ift/data/csv.hpp"
#include "ift/data/fashion_mnist.hpp"
#include "ift/data/idx.hpp"
#include "ift/data/synthetic.hpp"

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;

namespace {

// A fresh directory per test under testing::TempDir().
class DataFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) /
           ("ift_test_data_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }

  static void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary) << bytes;
  }
  static std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  static void gzip_bytes(const std::string& path, const std::string& bytes) {
    gzFile gz = gzopen(path.c_str(), "wb");
    ASSERT_NE(gz, nullptr);
    ASSERT_EQ(gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
    ASSERT_EQ(gzclose(gz), Z_OK);
  }

  // n images of 3 × 4 pixels with distinct values, and labels i % 10.
  static ift::IdxArray images(ift::Index n) {
    ift::IdxArray a;
    a.dims = {n, 3, 4};
    for (ift::Index i = 0; i < n * 12; ++i) a.data.push_back(static_cast<std::uint8_t>((i * 37) % 256));
    return a;
  }
  static ift::IdxArray labels(ift::Index n) {
    ift::IdxArray a;
    a.dims = {n};
    for (ift::Index i = 0; i < n; ++i) a.data.push_back(static_cast<std::uint8_t>(i % 10));
    return a;
  }

  template <class F>
  static std::string error_of(F&& f) {
    try {
      f();
    } catch (const std::exception& e) {
      return e.what();
    }
    ADD_FAILURE() << "expected an exception";
    return "";
  }

  fs::path dir_;
};

// ---- IDX ------------------------------------------------------------------------------------

TEST_F(DataFiles, IdxRoundTripRaw) {
  const ift::IdxArray a = images(7);
  ift::write_idx(file("img"), a);
  const std::string bytes = read_bytes(file("img"));
  ASSERT_EQ(bytes.size(), 16u + 7 * 12);
  EXPECT_EQ(bytes.substr(0, 4), std::string("\0\0\x08\x03", 4));  // big-endian magic
  const ift::IdxArray b = ift::read_idx(file("img"));
  EXPECT_EQ(b.dims, a.dims);
  EXPECT_EQ(b.data, a.data);
  EXPECT_EQ(b.magic(), ift::kIdxImagesMagic);
}

TEST_F(DataFiles, IdxRoundTripGzip) {
  ift::write_idx(file("img"), images(5));
  ift::write_idx(file("lab"), labels(5));
  gzip_bytes(file("img.gz"), read_bytes(file("img")));
  gzip_bytes(file("lab.gz"), read_bytes(file("lab")));
  ASSERT_EQ(read_bytes(file("img.gz")).substr(0, 2), "\x1f\x8b");
  EXPECT_EQ(ift::read_idx(file("img.gz")).data, images(5).data);

  const auto raw = ift::load_idx_pair<double>(file("img"), file("lab"));
  const auto gz = ift::load_idx_pair<double>(file("img.gz"), file("lab.gz"));
  ASSERT_EQ(raw.size(), 5);
  ASSERT_EQ(raw.num_features(), 12);
  EXPECT_EQ(raw.num_classes, 10);
  EXPECT_EQ(raw.X, gz.X);
  EXPECT_EQ(raw.labels, gz.labels);
  for (ift::Index i = 0; i < 5; ++i) {
    EXPECT_EQ(raw.labels(i), i % 10);
    for (ift::Index j = 0; j < 12; ++j)
      EXPECT_EQ(raw.X(i, j), static_cast<double>((i * 12 + j) * 37 % 256) / 255.0);
  }
}

TEST_F(DataFiles, IdxRowRange) {
  ift::write_idx(file("img"), images(6));
  ift::write_idx(file("lab"), labels(6));
  const auto all = ift::load_idx_pair<float>(file("img"), file("lab"));
  const auto part = ift::load_idx_pair<float>(file("img"), file("lab"), 3, 2);
  ASSERT_EQ(part.size(), 3);
  EXPECT_EQ(part.X, all.X.middleRows(2, 3));
  EXPECT_EQ(part.labels, all.labels.segment(2, 3));
  EXPECT_EQ(ift::load_idx_pair<float>(file("img"), file("lab"), -1, 4).size(), 2);
  const std::string msg = error_of([&] { ift::load_idx_pair<float>(file("img"), file("lab"), 5, 2); });
  EXPECT_THAT(msg, AllOf(HasSubstr(file("img")), HasSubstr("beyond"), HasSubstr("[2, 7)"), HasSubstr("6 rows")));
}

TEST_F(DataFiles, IdxMissingFile) {
  const std::string msg = error_of([&] { ift::read_idx(file("nope")); });
  EXPECT_THAT(msg, AllOf(HasSubstr(file("nope")), HasSubstr("not found")));
}

TEST_F(DataFiles, IdxWrongMagic) {
  write_bytes(file("bad"), std::string("\x12\x34\x56\x78\0\0\0\0", 8));
  EXPECT_THAT(error_of([&] { ift::read_idx(file("bad")); }),
              AllOf(HasSubstr(file("bad")), HasSubstr("wrong magic number"), HasSubstr("found 0x12345678")));
  // A labels file given as the images file: valid IDX, wrong layout.
  ift::write_idx(file("lab"), labels(4));
  EXPECT_THAT(error_of([&] { ift::load_idx_pair<double>(file("lab"), file("lab")); }),
              AllOf(HasSubstr(file("lab")), HasSubstr("expected 0x00000803"), HasSubstr("found 0x00000801")));
}

TEST_F(DataFiles, IdxTruncated) {
  ift::write_idx(file("img"), images(4));
  std::string bytes = read_bytes(file("img"));
  bytes.resize(bytes.size() - 10);
  write_bytes(file("short"), bytes);
  EXPECT_THAT(error_of([&] { ift::read_idx(file("short")); }),
              AllOf(HasSubstr(file("short")), HasSubstr("truncated"), HasSubstr("expected 48 bytes of data, found 38")));
  // Well-formed gzip stream of a truncated file: same message.
  gzip_bytes(file("short.gz"), bytes);
  EXPECT_THAT(error_of([&] { ift::read_idx(file("short.gz")); }),
              AllOf(HasSubstr(file("short.gz")), HasSubstr("expected 48 bytes of data, found 38")));
  // The gzip stream itself cut short.
  gzip_bytes(file("full.gz"), read_bytes(file("img")));
  std::string gz = read_bytes(file("full.gz"));
  gz.resize(gz.size() / 2);
  write_bytes(file("cut.gz"), gz);
  EXPECT_THAT(error_of([&] { ift::read_idx(file("cut.gz")); }), HasSubstr(file("cut.gz")));
  // Cut far inside the data: still the plain count, not a misleading header complaint.
  write_bytes(file("tiny"), bytes.substr(0, 20));
  EXPECT_THAT(error_of([&] { ift::read_idx(file("tiny")); }), HasSubstr("expected 48 bytes of data, found 4"));
  // Header shorter than its dimensions.
  write_bytes(file("hdr"), std::string("\0\0\x08\x03\0\0\0\x01", 8));
  EXPECT_THAT(error_of([&] { ift::read_idx(file("hdr")); }), AllOf(HasSubstr(file("hdr")), HasSubstr("truncated header")));
}

TEST_F(DataFiles, IdxCountMismatch) {
  ift::write_idx(file("img"), images(5));
  ift::write_idx(file("lab"), labels(4));
  EXPECT_THAT(error_of([&] { ift::load_idx_pair<double>(file("img"), file("lab")); }),
              AllOf(HasSubstr(file("img")), HasSubstr(file("lab")), HasSubstr("5 images"), HasSubstr("4 labels")));
}

// Issue 14, point 7: Fashion-MNIST files whose images are not 28 × 28 are refused from the
// header's dimensions (even when the byte count per image matches), expected before found; a
// label outside [0, 10) names the file and the 0-based row.
TEST_F(DataFiles, FashionMnistChecksImageSizeAndLabelRange) {
  auto write_set = [&](const std::string& prefix, ift::Index n, ift::Index rows, ift::Index cols,
                       std::vector<std::uint8_t> label_values) {
    ift::IdxArray img;
    img.dims = {n, rows, cols};
    img.data.assign(static_cast<std::size_t>(n * rows * cols), 7);
    ift::write_idx(file(prefix + "-images-idx3-ubyte"), img);
    ift::IdxArray lab;
    lab.dims = {n};
    lab.data = std::move(label_values);
    ift::write_idx(file(prefix + "-labels-idx1-ubyte"), lab);
  };
  const std::string dir = dir_.string();
  write_set("t10k", 3, 28, 28, {0, 1, 2});
  // 14 × 56 = 784 bytes per image, as 28 × 28: the byte count alone would accept it.
  write_set("train", 5, 14, 56, {0, 1, 2, 3, 4});
  EXPECT_THAT(error_of([&] { ift::load_fashion_mnist<double>(2, 2, 2, true, dir); }),
              AllOf(HasSubstr(file("train-images-idx3-ubyte")),
                    HasSubstr("images of 14 × 56 pixels, expected 28 × 28")));
  write_set("train", 5, 28, 28, {0, 1, 2, 12, 4});
  EXPECT_THAT(error_of([&] { ift::load_fashion_mnist<double>(2, 2, 2, true, dir); }),
              AllOf(HasSubstr(file("train-labels-idx1-ubyte")),
                    HasSubstr("label 12 at row 3 (0-based) outside [0, 10)")));
  // Rows that are not loaded are not judged; what is loaded has the 10 classes.
  const auto ok = ift::load_fashion_mnist<double>(2, 1, 3, true, dir);
  EXPECT_EQ(ok.train.num_classes, 10);
  EXPECT_EQ(ok.test.num_features(), 785);
}

TEST_F(DataFiles, WriteIdxRejectsWrongSize) {
  ift::IdxArray a = images(2);
  a.data.pop_back();
  EXPECT_THROW(ift::write_idx(file("x"), a), std::invalid_argument);
}

// ---- CSV ------------------------------------------------------------------------------------

TEST_F(DataFiles, CsvClassificationWithHeader) {
  write_bytes(file("t.csv"), "# made by hand\nx1,label,x2\n1.5,0,-2\n\n+3,2, 4e-1\r\n5,1,\"6\"\n");
  ift::CsvReadOptions opt;
  opt.target_name = "label";
  const auto d = ift::load_csv<double>(file("t.csv"), opt);
  ASSERT_EQ(d.size(), 3);
  ASSERT_EQ(d.num_features(), 2);
  EXPECT_EQ(d.num_classes, 3);
  EXPECT_EQ(d.labels, (ift::LabelVector(3) << 0, 2, 1).finished());
  ift::Matrix<double> X(3, 2);
  X << 1.5, -2, 3, 0.4, 5, 6;
  EXPECT_EQ(d.X, X);
  EXPECT_EQ(d.targets.size(), 0);
  // Same by index, and the label column defaulting to the last.
  opt.target_name.clear();
  opt.target_column = 1;
  EXPECT_EQ(ift::load_csv<double>(file("t.csv"), opt).labels, d.labels);
}

TEST_F(DataFiles, CsvRegressionNoHeader) {
  write_bytes(file("r.csv"), "1,2,0.25\n3,4,-0.5\n");
  ift::CsvReadOptions opt;
  opt.task = ift::CsvReadOptions::Task::Regression;
  const auto d = ift::load_csv<float>(file("r.csv"), opt);
  ASSERT_EQ(d.size(), 2);
  ASSERT_EQ(d.targets.rows(), 2);
  ASSERT_EQ(d.targets.cols(), 1);
  EXPECT_EQ(d.targets(0, 0), 0.25f);
  EXPECT_EQ(d.targets(1, 0), -0.5f);
  EXPECT_EQ(d.X(1, 1), 4.0f);
  EXPECT_EQ(d.labels.size(), 0);
  EXPECT_EQ(d.num_classes, 0);
}

TEST_F(DataFiles, CsvErrorsNameFileLineAndColumn) {
  struct Case {
    const char* name;
    const char* text;
    std::vector<std::string> expected;
  };
  const std::vector<Case> cases = {
      {"nan.csv", "a,b,y\n1,2,0\n3,nan,1\n", {":3:", "column 2", "\"b\"", "NaN"}},
      {"inf.csv", "a,b,y\n1,2,0\n3,4,1\n-inf,4,1\n", {":4:", "column 1", "Inf"}},
      {"ragged.csv", "1,2,0\n3,4\n", {":2:", "ragged", "2 columns, expected 3"}},
      {"text.csv", "a,b,y\n1,2,0\n1,2x,1\n", {":3:", "column 2", "non-numeric", "\"2x\""}},
      {"empty_cell.csv", "1,2,0\n1,,1\n", {":2:", "column 2", "non-numeric"}},
      {"label.csv", "1,2,0\n1,2,1.5\n", {":2:", "column 3", "label", "found 1.5"}},
      // Significant digits, not std::to_string's "0.000000".
      {"tiny_label.csv", "1,2,0\n1,2,1e-7\n", {":2:", "column 3", "found 1e-07"}},
      {"empty.csv", "", {"empty file"}},
      {"only_header.csv", "a,b,y\n", {"no data rows"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    write_bytes(file(c.name), c.text);
    const std::string msg = error_of([&] { ift::load_csv<double>(file(c.name)); });
    EXPECT_THAT(msg, HasSubstr(file(c.name)));
    for (const std::string& part : c.expected) EXPECT_THAT(msg, HasSubstr(part));
  }
  EXPECT_THAT(error_of([&] { ift::load_csv<double>(file("missing.csv")); }),
              AllOf(HasSubstr(file("missing.csv")), HasSubstr("not found")));
}

// ---- Synthetic ------------------------------------------------------------------------------

TEST(Synthetic, BlobsShapesAndDeterminism) {
  const auto a = ift::make_blobs<double>(300, 5, 4, 6.0, 42);
  const auto b = ift::make_blobs<double>(300, 5, 4, 6.0, 42);
  const auto c = ift::make_blobs<double>(300, 5, 4, 6.0, 43);
  const auto f = ift::make_blobs<float>(300, 5, 4, 6.0, 42);
  ASSERT_EQ(a.size(), 300);
  ASSERT_EQ(a.num_features(), 5);
  EXPECT_EQ(a.num_classes, 4);
  EXPECT_EQ(a.X, b.X);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_NE(a.X, c.X);
  EXPECT_EQ(f.X, a.X.cast<float>());
  EXPECT_TRUE(a.X.allFinite());
  for (ift::Index i = 0; i < a.size(); ++i) EXPECT_EQ(a.labels(i), i % 4);

  // Well separated blobs: nearest class mean classifies (almost) every point.
  ift::Matrix<double> means = ift::Matrix<double>::Zero(4, 5);
  for (ift::Index i = 0; i < a.size(); ++i) means.row(a.labels(i)) += a.X.row(i) / 75.0;
  int correct = 0;
  for (ift::Index i = 0; i < a.size(); ++i) {
    ift::Index best;
    (means.rowwise() - a.X.row(i)).rowwise().squaredNorm().minCoeff(&best);
    correct += best == a.labels(i);
  }
  EXPECT_GE(correct, 290);
}

TEST(Synthetic, LinearRegression) {
  const auto a = ift::make_linear_regression<double>(50, 4, 3, 0.0, 7);
  const auto b = ift::make_linear_regression<double>(50, 4, 3, 0.0, 7);
  ASSERT_EQ(a.data.X.rows(), 50);
  ASSERT_EQ(a.data.X.cols(), 4);
  ASSERT_EQ(a.data.targets.rows(), 50);
  ASSERT_EQ(a.data.targets.cols(), 3);
  ASSERT_EQ(a.weights.rows(), 4);
  ASSERT_EQ(a.weights.cols(), 3);
  EXPECT_EQ(a.data.labels.size(), 0);
  EXPECT_EQ(a.data.X, b.data.X);
  EXPECT_EQ(a.weights, b.weights);
  // Noise-free: targets are exactly X W (up to rounding) and least squares recovers W.
  EXPECT_LT((a.data.X * a.weights - a.data.targets).norm(), 1e-12 * a.data.targets.norm());
  const ift::Matrix<double> W = a.data.X.colPivHouseholderQr().solve(a.data.targets);
  EXPECT_LT((W - a.weights).norm(), 1e-10);
  // Noise of the requested size.
  const auto noisy = ift::make_linear_regression<double>(4000, 4, 1, 0.5, 7);
  const double sd = std::sqrt((noisy.data.X * noisy.weights - noisy.data.targets).squaredNorm() / 4000.0);
  EXPECT_NEAR(sd, 0.5, 0.03);
}

TEST(Synthetic, RngIsPortable) {
  // std::mt19937_64's 10000th output is fixed by the C++ standard; our transforms sit on it.
  std::mt19937_64 e(5489u);
  e.discard(9999);
  EXPECT_EQ(e(), 9981545732273789042ull);
  ift::SyntheticRng r(1);
  double sum = 0, sq = 0;
  for (int i = 0; i < 20000; ++i) {
    const double z = r.normal();
    sum += z;
    sq += z * z;
  }
  EXPECT_NEAR(sum / 20000, 0.0, 0.03);
  EXPECT_NEAR(sq / 20000, 1.0, 0.04);
}

// ---- Fashion-MNIST (DESIGN.md P1) and MNIST digits ------------------------------------------

TEST(FashionMnist, P1SplitRules) {
  const std::string dir = ift::default_fashion_mnist_dir();
  if (!fs::exists(fs::path(dir) / "train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST not installed in " << dir << " (apt-get install dataset-fashion-mnist)";
  const ift::Index n_train = 300, n_val = 200, n_test = 100;
  const auto s = ift::load_fashion_mnist<double>(n_train, n_val, n_test, true);
  const ift::IdxArray train = ift::read_idx(dir + "/train-images-idx3-ubyte.gz");
  const ift::IdxArray train_labels = ift::read_idx(dir + "/train-labels-idx1-ubyte.gz");
  const ift::IdxArray test = ift::read_idx(dir + "/t10k-images-idx3-ubyte.gz");
  ASSERT_EQ(train.dims, (std::vector<ift::Index>{60000, 28, 28}));
  ASSERT_EQ(test.dims, (std::vector<ift::Index>{10000, 28, 28}));

  ASSERT_EQ(s.train.size(), n_train);
  ASSERT_EQ(s.val.size(), n_val);
  ASSERT_EQ(s.test.size(), n_test);
  for (const auto* d : {&s.train, &s.val, &s.test}) {
    ASSERT_EQ(d->num_features(), 785);
    EXPECT_EQ(d->num_classes, 10);
    EXPECT_TRUE((d->X.col(784).array() == 1.0).all());
    EXPECT_GE(d->X.minCoeff(), 0.0);
    EXPECT_LE(d->X.maxCoeff(), 1.0);
    EXPECT_GE(d->labels.minCoeff(), 0);
    EXPECT_LE(d->labels.maxCoeff(), 9);
  }
  auto expect_row = [](const ift::Dataset<double>& d, ift::Index row, const ift::IdxArray& file, ift::Index file_row) {
    for (ift::Index j = 0; j < 784; ++j)
      ASSERT_EQ(d.X(row, j), file.data[static_cast<std::size_t>(file_row * 784 + j)] / 255.0) << "pixel " << j;
  };
  expect_row(s.train, 0, train, 0);
  expect_row(s.train, n_train - 1, train, n_train - 1);
  expect_row(s.val, 0, train, n_train);  // validation comes from the TRAIN file
  expect_row(s.val, n_val - 1, train, n_train + n_val - 1);
  expect_row(s.test, 0, test, 0);
  EXPECT_EQ(s.val.labels(0), train_labels.data[n_train]);

  const auto nb = ift::load_fashion_mnist<float>(10, 5, 5, false);
  EXPECT_EQ(nb.train.num_features(), 784);
  EXPECT_EQ(nb.train.X, s.train.X.topLeftCorner(10, 784).cast<float>());
}

TEST(FashionMnist, MissingFilesSayHowToInstall) {
  const std::string dir = ::testing::TempDir() + "/ift_no_fashion_here";
  try {
    ift::load_fashion_mnist<double>(10, 10, 10, true, dir);
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), AllOf(HasSubstr(dir), HasSubstr("not found"),
                                HasSubstr("install it with: apt-get install dataset-fashion-mnist")));
  }
  try {
    ift::load_mnist_digits<double>(10, 10, 10, true, dir);
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), AllOf(HasSubstr(dir), HasSubstr("data/get-mnist.sh")));
  }
  EXPECT_THROW(ift::load_fashion_mnist<double>(-1, 10, 10, true, dir), std::invalid_argument);
}

TEST(MnistDigits, SplitsFromConvertedFiles) {
  const std::string dir = std::string(IFT_SOURCE_DIR) + "/data/cache/mnist";
  if (!fs::exists(dir + "/images-idx3-ubyte")) GTEST_SKIP() << "run data/get-mnist.sh first";
  const auto s = ift::load_mnist_digits<double>(1000, 500, 2000, true, dir);
  const auto all = ift::load_idx_pair<double>(dir + "/images-idx3-ubyte", dir + "/labels-idx1-ubyte");
  ASSERT_EQ(all.size(), 10000);
  EXPECT_EQ(s.train.size(), 1000);
  EXPECT_EQ(s.val.size(), 500);
  EXPECT_EQ(s.test.size(), 2000);
  EXPECT_EQ(s.train.num_features(), 785);
  EXPECT_EQ(s.val.X.leftCols(784), all.X.middleRows(1000, 500));
  EXPECT_EQ(s.test.X.leftCols(784), all.X.bottomRows(2000));
  // Shuffled: every class shows up in the first 1000.
  for (int c = 0; c < 10; ++c) EXPECT_GT((s.train.labels.array() == c).count(), 50) << "class " << c;
  EXPECT_THROW(ift::load_mnist_digits<double>(9000, 1000, 1, false, dir), std::runtime_error);
}

// Dataset::gather copies its columns on every thread beyond 2e5 entries: the rows listed, in
// order (repeats allowed), with their labels, entry for entry, on both sides of that threshold.
TEST(DatasetGather, CopiesTheListedRowsInOrder) {
  for (const ift::Index cols : {7, 1200}) {  // 300 x 7 serial, 300 x 1,200 on every thread
    ift::Dataset<double> d;
    d.X.resize(500, cols);
    for (ift::Index j = 0; j < cols; ++j)
      for (ift::Index i = 0; i < 500; ++i) d.X(i, j) = double(i) * 10000.0 + double(j);
    d.labels.resize(500);
    for (ift::Index i = 0; i < 500; ++i) d.labels(i) = static_cast<int>(i % 10);
    d.num_classes = 10;
    std::vector<ift::Index> rows;
    for (ift::Index k = 0; k < 300; ++k) rows.push_back((k * 37 + 11) % 500);
    rows.push_back(rows.front());  // a repeat
    const ift::Dataset<double> g = d.gather(rows);
    ASSERT_EQ(g.X.rows(), 301);
    ASSERT_EQ(g.X.cols(), cols);
    bool same = true;
    for (ift::Index i = 0; i < 301; ++i) {
      const ift::Index r = rows[static_cast<std::size_t>(i)];
      same = same && g.labels(i) == d.labels(r);
      for (ift::Index j = 0; j < cols; ++j) same = same && g.X(i, j) == d.X(r, j);
    }
    EXPECT_TRUE(same) << cols << " columns";
    EXPECT_EQ(g.num_classes, 10);
  }
}

}  // namespace
