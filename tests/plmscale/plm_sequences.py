"""Tiny protein sets shared by the plmscale tests (imported: the test folder is on sys.path under pytest)."""

# 24 distinct sequences: a protein set keeps a repeated sequence once, so copies would shrink it
SEQS = [s + "ACDEFG"[k] * (k + 1) for k in range(6)
        for s in ("MKTAYIAKQRQISFVKSHFSRQ", "MSEQNNTEMTFQIQRIYTKDIS", "GSHMLEDPVDAFQE", "MNIFEMLRIDEGLRLKIYKDTEG")]
