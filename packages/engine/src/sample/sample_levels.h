// The sampler's probability levels: the one definition the CPU reference
// (sampler.cpp) and the CUDA kernels (backend/cuda/sample.cu) both compute, in
// integer arithmetic and correctly rounded f32 operations only, so the two pick
// the same token bit for bit.
//
// A kept token's unnormalised probability exp((logit - max) / T) is taken at
// level L = round_half_even((max - logit) * c), c = 256 * log2(e) / T, as
//   weight(L) = round(2^(40 - L / 256))    (2^40 for the max, integer),
// i.e. probabilities quantised to steps of 2^(1/256) (0.27 %: relative error at
// most 0.14 %, below a bf16 logit's own rounding), and levels L >= 10240
// (p < 2^-40) dropped. Equal weights within a level are what make the sampler
// cheap: a level's mass is count x weight, so top-k, top-p and the draw are
// resolved from a histogram of levels, and only the drawn level's tokens are
// ever ordered.
#pragma once
#include <cmath>
#include <cstdint>

#include "batchgen/sampling.h"

namespace bg {

constexpr int32_t kSampleLevels = 10240;           // 40 octaves of 256 levels
constexpr float kSampleLevelScale = 369.32993f;    // 256 * log2(e), rounded to f32

// round(2^(40 - j / 256)) for j < 256 (generated with 60-digit decimals).
#define BG_SAMPLE_OCTAVE_TABLE \
   1099511627776ull, 1096538610001ull, 1093573631100ull, 1090616669335ull, \
   1087667703029ull, 1084726710562ull, 1081793670374ull, 1078868560962ull, \
   1075951360882ull, 1073042048748ull, 1070140603230ull, 1067247003058ull, \
   1064361227019ull, 1061483253956ull, 1058613062771ull, 1055750632422ull, \
   1052895941925ull, 1050048970350ull, 1047209696826ull, 1044378100539ull, \
   1041554160730ull, 1038737856695ull, 1035929167789ull, 1033128073420ull, \
   1030334553053ull, 1027548586208ull, 1024770152462ull, 1021999231444ull, \
   1019235802842ull, 1016479846395ull, 1013731341900ull, 1010990269207ull, \
   1008256608221ull, 1005530338901ull, 1002811441260ull, 1000099895366ull, \
   997395681340ull, 994698779357ull, 992009169646ull, 989326832489ull, \
   986651748221ull, 983983897230ull, 981323259959ull, 978669816902ull, \
   976023548607ull, 973384435672ull, 970752458751ull, 968127598547ull, \
   965509835819ull, 962899151374ull, 960295526073ull, 957698940829ull, \
   955109376606ull, 952526814419ull, 949951235336ull, 947382620474ull, \
   944820951003ull, 942266208142ull, 939718373163ull, 937177427386ull, \
   934643352185ull, 932116128980ull, 929595739246ull, 927082164504ull, \
   924575386327ull, 922075386337ull, 919582146208ull, 917095647659ull, \
   914615872464ull, 912142802441ull, 909676419462ull, 907216705443ull, \
   904763642353ull, 902317212208ull, 899877397073ull, 897444179062ull, \
   895017540335ull, 892597463104ull, 890183929625ull, 887776922206ull, \
   885376423200ull, 882982415008ull, 880594880080ull, 878213800913ull, \
   875839160050ull, 873470940084ull, 871109123651ull, 868753693437ull, \
   866404632174ull, 864061922641ull, 861725547664ull, 859395490113ull, \
   857071732908ull, 854754259011ull, 852443051434ull, 850138093233ull, \
   847839367509ull, 845546857411ull, 843260546131ull, 840980416909ull, \
   838706453029ull, 836438637819ull, 834176954654ull, 831921386954ull, \
   829671918182ull, 827428531848ull, 825191211505ull, 822959940750ull, \
   820734703226ull, 818515482620ull, 816302262662ull, 814095027126ull, \
   811893759832ull, 809698444641ull, 807509065459ull, 805325606235ull, \
   803148050963ull, 800976383678ull, 798810588460ull, 796650649431ull, \
   794496550755ull, 792348276641ull, 790205811341ull, 788069139146ull, \
   785938244393ull, 783813111460ull, 781693724767ull, 779580068777ull, \
   777472127994ull, 775369886965ull, 773273330277ull, 771182442562ull, \
   769097208489ull, 767017612772ull, 764943640166ull, 762875275465ull, \
   760812503507ull, 758755309168ull, 756703677367ull, 754657593063ull, \
   752617041257ull, 750582006988ull, 748552475338ull, 746528431428ull, \
   744509860419ull, 742496747512ull, 740489077950ull, 738486837014ull, \
   736490010025ull, 734498582345ull, 732512539373ull, 730531866549ull, \
   728556549354ull, 726586573306ull, 724621923963ull, 722662586922ull, \
   720708547817ull, 718759792325ull, 716816306159ull, 714878075070ull, \
   712945084849ull, 711017321326ull, 709094770367ull, 707177417877ull, \
   705265249802ull, 703358252122ull, 701456410856ull, 699559712063ull, \
   697668141836ull, 695781686310ull, 693900331653ull, 692024064074ull, \
   690152869817ull, 688286735165ull, 686425646436ull, 684569589987ull, \
   682718552210ull, 680872519535ull, 679031478429ull, 677195415395ull, \
   675364316973ull, 673538169738ull, 671716960303ull, 669900675316ull, \
   668089301461ull, 666282825460ull, 664481234069ull, 662684514080ull, \
   660892652321ull, 659105635655ull, 657323450983ull, 655546085238ull, \
   653773525390ull, 652005758444ull, 650242771441ull, 648484551457ull, \
   646731085600ull, 644982361017ull, 643238364887ull, 641499084424ull, \
   639764506879ull, 638034619534ull, 636309409707ull, 634588864751ull, \
   632872972052ull, 631161719030ull, 629455093141ull, 627753081873ull, \
   626055672747ull, 624362853321ull, 622674611183ull, 620990933957ull, \
   619311809300ull, 617637224902ull, 615967168487ull, 614301627810ull, \
   612640590662ull, 610984044865ull, 609331978275ull, 607684378780ull, \
   606041234302ull, 604402532795ull, 602768262244ull, 601138410670ull, \
   599512966123ull, 597891916686ull, 596275250476ull, 594662955642ull, \
   593055020361ull, 591451432848ull, 589852181346ull, 588257254129ull, \
   586666639507ull, 585080325817ull, 583498301431ull, 581920554749ull, \
   580347074207ull, 578777848267ull, 577212865426ull, 575652114211ull, \
   574095583180ull, 572543260922ull, 570995136056ull, 569451197232ull, \
   567911433133ull, 566375832469ull, 564844383984ull, 563317076449ull, \
   561793898668ull, 560274839475ull, 558759887732ull, 557249032334ull, \
   555742262204ull, 554239566296ull, 552740933594ull, 551246353110ull \

// Weight of level L < kSampleLevels (>= 1), from the octave table above.
BG_HOST_DEVICE inline uint64_t sample_level_weight(const uint64_t* octave, int32_t level) {
  return octave[level & 255] >> (level >> 8);
}

// c for a temperature > 0 (correctly rounded division on both sides).
BG_HOST_DEVICE inline float sample_level_coef(float temperature) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(kSampleLevelScale, temperature);
#else
  return kSampleLevelScale / temperature;
#endif
}

// Level of logit x against the row's max m (x <= m, x not NaN for a kept token);
// kSampleLevels or more when the token is dropped (p < 2^-40, -inf, NaN).
BG_HOST_DEVICE inline int32_t sample_level(float x, float m, float c) {
  if (x == m) return 0;  // also when m is +inf
#if defined(__CUDA_ARCH__)
  const float y = __fmul_rn(__fsub_rn(m, x), c);
  if (!(y < float(kSampleLevels))) return kSampleLevels;
  // y + 2^23 rounds y to the nearest integer, ties to even, as the CPU's lrint.
  return __float_as_int(__fadd_rn(y, 8388608.0f)) - 0x4B000000;
#else
  const float d = m - x;
  const float y = d * c;
  if (!(y < float(kSampleLevels))) return kSampleLevels;
  return int32_t(std::lrint(y));  // round to nearest even (the default rounding mode)
#endif
}

// The last level kept by min-p: weight(L) >= ceil(min_p * 2^40) (weights never
// grow with L). kSampleLevels - 1 when min_p is 0; 0 when it is 1.
BG_HOST_DEVICE inline int32_t sample_level_cap(const uint64_t* octave, float min_p) {
  const uint64_t wmin = uint64_t(ceil(double(min_p) * 1099511627776.0));
  int32_t lo = 0, hi = kSampleLevels - 1;  // weight(0) = 2^40 >= wmin always
  while (lo < hi) {
    const int32_t mid = (lo + hi + 1) / 2;
    if (sample_level_weight(octave, mid) >= wmin) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

}  // namespace bg
