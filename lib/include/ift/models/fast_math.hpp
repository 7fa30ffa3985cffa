// Vectorised elementwise functions Eigen 3.4 leaves scalar in double.
//
// TanhOp<S>: tanh as an Eigen functor with a packet path in float and double (Eigen 3.4's
// `.tanh()` vectorises float only and calls std::tanh per element in double, which cost the deep
// MLP's forward pass more than its elementwise work should). Use it as
// `x.unaryExpr(TanhOp<S>{})`. The formula (Cephes' tanh, the classical one):
//   |x| < 0.625:  tanh x = x + x·s·P(s)/Q(s), s = x² (a rational minimax fit of degree 2/3);
//   |x| ≥ 0.625:  tanh x = sign(x)·(1 − 2/(e^{2|x|} + 1)), with e^{2|x|} from Eigen's packet exp
//                 (|x| clamped at 40, where tanh is 1 in double).
// One division per packet serves both branches. Accuracy: within a few ulp of std::tanh over the
// whole line (tests/test_fast_math.cpp measures it); NaN stays NaN, ±0 keep their sign.
#pragma once

#include <cmath>

#include <Eigen/Core>

namespace ift {

namespace detail {
// Cephes tanh coefficients: P (degree 2) and Q (monic, degree 3) in s = x².
inline constexpr double kTanhP0 = -9.64399179425052238628E-1;
inline constexpr double kTanhP1 = -9.92877231001918586564E1;
inline constexpr double kTanhP2 = -1.61468768441708447952E3;
inline constexpr double kTanhQ1 = 1.12811678491632931402E2;
inline constexpr double kTanhQ2 = 2.23548839060100448583E3;
inline constexpr double kTanhQ3 = 4.84406305325125486048E3;
inline constexpr double kTanhSmall = 0.625;
inline constexpr double kTanhClamp = 40.0;
}  // namespace detail

template <class S>
struct TanhOp {
  /// Scalar path (used for the tail of a vector that does not fill a packet): the same formula.
  S operator()(const S& x) const {
    using namespace detail;
    const S a = std::abs(x);
    if (!(a == a)) return x;  // NaN
    S r;
    if (a < S(kTanhSmall)) {
      const S s = a * a;
      const S p = (S(kTanhP0) * s + S(kTanhP1)) * s + S(kTanhP2);
      const S q = ((s + S(kTanhQ1)) * s + S(kTanhQ2)) * s + S(kTanhQ3);
      r = a + a * s * (p / q);
    } else {
      const S e = std::exp(S(2) * std::min(a, S(kTanhClamp)));
      r = S(1) - S(2) / (e + S(1));
    }
    return std::copysign(r, x);
  }

  template <class Packet>
  Packet packetOp(const Packet& x) const {
    using namespace Eigen::internal;
    using namespace detail;
    const Packet a = pabs(x);
    const Packet small = pcmp_lt(a, pset1<Packet>(S(kTanhSmall)));
    // Small branch: numerator P(s), denominator Q(s).
    const Packet s = pmul(a, a);
    const Packet p = pmadd(pmadd(pset1<Packet>(S(kTanhP0)), s, pset1<Packet>(S(kTanhP1))), s,
                           pset1<Packet>(S(kTanhP2)));
    const Packet q = pmadd(pmadd(padd(s, pset1<Packet>(S(kTanhQ1))), s, pset1<Packet>(S(kTanhQ2))),
                           s, pset1<Packet>(S(kTanhQ3)));
    // Large branch: numerator 2, denominator e^{2|x|} + 1.
    const Packet two = pset1<Packet>(S(2));
    const Packet e = pexp(pmul(two, pmin(a, pset1<Packet>(S(kTanhClamp)))));
    const Packet one = pset1<Packet>(S(1));
    const Packet ratio = pdiv(pselect(small, p, two), pselect(small, q, padd(e, one)));
    const Packet r = pselect(small, padd(a, pmul(pmul(a, s), ratio)), psub(one, ratio));
    // Sign of x (r ≥ 0), and NaN passed through (a != a).
    const Packet signed_r = por(r, pand(x, pset1<Packet>(S(-0.0))));
    return pselect(pcmp_eq(a, a), signed_r, x);
  }
};

}  // namespace ift

namespace Eigen::internal {
template <class S>
struct functor_traits<ift::TanhOp<S>> {
  enum {
    Cost = 30 * NumTraits<S>::MulCost,
    PacketAccess = packet_traits<S>::HasExp && packet_traits<S>::HasDiv
  };
};
}  // namespace Eigen::internal
