// In-memory data set: features X (n × d, one example per row) with class labels and/or
// real-valued targets.
#pragma once

#include <string>
#include <vector>

#include "ift/core.hpp"

namespace ift {

/// "" when every label lies in [0, num_classes), else the first that does not, by its row:
/// "label 12 at row 3 (0-based) outside [0, 10)".
inline std::string label_range_error(const LabelVector& labels, Index num_classes) {
  for (Index i = 0; i < labels.size(); ++i)
    if (labels(i) < 0 || labels(i) >= num_classes)
      return "label " + std::to_string(labels(i)) + " at row " + std::to_string(i) +
             " (0-based) outside [0, " + std::to_string(num_classes) + ")";
  return "";
}

template <class S>
struct Dataset {
  Matrix<S> X;            ///< n × d features.
  LabelVector labels;     ///< n class labels in [0, num_classes), empty for regression.
  Matrix<S> targets;      ///< n × k regression targets, empty for classification.
  Index num_classes = 0;  ///< 0 for regression.

  Index size() const { return X.rows(); }
  Index num_features() const { return X.cols(); }

  /// Rows [begin, begin + count) as a new data set.
  Dataset slice(Index begin, Index count) const {
    require(begin >= 0 && count >= 0 && begin + count <= size(),
            "Dataset::slice: rows [" + std::to_string(begin) + ", " + std::to_string(begin + count) +
                ") outside a data set of " + std::to_string(size()) + " rows");
    Dataset out;
    out.X = X.middleRows(begin, count);
    if (labels.size()) out.labels = labels.segment(begin, count);
    if (targets.size()) out.targets = targets.middleRows(begin, count);
    out.num_classes = num_classes;
    return out;
  }

  /// The rows listed in `rows`, in that order (minibatches).
  Dataset gather(const std::vector<Index>& rows) const {
    Dataset out;
    out.X.resize(static_cast<Index>(rows.size()), X.cols());
    if (labels.size()) out.labels.resize(static_cast<Index>(rows.size()));
    if (targets.size()) out.targets.resize(static_cast<Index>(rows.size()), targets.cols());
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const Index r = rows[i];
      out.X.row(static_cast<Index>(i)) = X.row(r);
      if (labels.size()) out.labels(static_cast<Index>(i)) = labels(r);
      if (targets.size()) out.targets.row(static_cast<Index>(i)) = targets.row(r);
    }
    out.num_classes = num_classes;
    return out;
  }

  /// Appends a constant-1 feature as the last column (bias as a feature, DESIGN.md P1).
  void append_bias_column() {
    X.conservativeResize(Eigen::NoChange, X.cols() + 1);
    X.col(X.cols() - 1).setOnes();
  }

  template <class T>
  Dataset<T> cast() const {
    Dataset<T> out;
    out.X = X.template cast<T>();
    out.labels = labels;
    out.targets = targets.template cast<T>();
    out.num_classes = num_classes;
    return out;
  }
};

}  // namespace ift
