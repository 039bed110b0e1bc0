/* test_normalize.c - the file-name normalizer stored with a model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "edgeserve/normalize.h"

static es_normalizer_t spec(const char *s) {
  es_normalizer_t n = {0};
  es_error_t err = {0};
  assert_int_equal(es_normalizer_parse(&n, s, &err), 0);
  return n;
}

/* Normalizes a C string into a buffer of exactly strlen + 1 bytes (so ASan
 * sees any write past the documented bound) and returns it, to be freed. */
static char *norm(const es_normalizer_t *n, const char *in, size_t len) {
  char *out = malloc(len + 1);
  assert_non_null(out);
  size_t r = es_normalize(n, in, len, out, len + 1);
  assert_true(r <= len);
  assert_int_equal(out[r], 0);
  return out;
}

static const struct {
  const char *spec, *in, *want;
} cases[] = {
    {"default", "La.Casa.di.Carta.S02E05.ITA.ENG.1080p.WEB-DL.x264.mkv", "la casa di carta"},
    {"default", "montalbano 2x3.avi", "montalbano"},
    {"default", "Il.Commissario.Montalbano.S01E01.Il.Ladro.Di.Merendine.ITA.DLMux.x264-UBi.mkv",
     "il commissario montalbano il ladro di merendine ubi"},
    {"default", "Gomorra - La Serie S03E01 [ITA] [1080p] [WEBDL] [H264] by NovaRip.mkv",
     "gomorra la serie by novarip"},
    {"default", "The.100.S03E05.720p.HDTV.x264-KILLERS.mkv", "the 100 killers"},
    {"default", "1992.S01E01.ITA.1080p.BluRay.x264-DaSH.mkv", "1992 dash"},
    {"default", "Doctor.Who.2005.S10E01.The.Pilot.1080p.AMZN.WEB-DL.DDP5.1.H.264-NTb.mkv",
     "doctor who 2005 the pilot ntb"},
    {"default", "Doctor Who (1963) - S01E01 - An Unearthly Child.avi",
     "doctor who 1963 an unearthly child"},
    {"default", "Breaking Bad Season 1-5 Complete 1080p BluRay x265 HEVC 10bit AAC 5.1-Silence",
     "breaking bad silence"},
    {"default", "Boris Stagione 1 Episodio 02 [DVDRip ITA].avi", "boris"},
    {"default", "[SubsPlease] One Piece - 1071 (1080p) [ABCD1234].mkv",
     "subsplease one piece 1071"},
    {"default", "Un Posto al Sole 2024-03-12 Rai3 HD.mp4", "un posto al sole 2024"},
    {"default", "9-1-1.S05E03.1080p.WEB.h264-GLHF.mkv", "9 1 1 glhf"},
    {"default", "The.Office.US.S02E01.The.Dundies.HDTV.XviD-LOL.[eztv].avi",
     "the office us the dundies lol"},
    {"default", "Game.of.Thrones.S08E03.720p.WEB.H264-MEMENTO.ita.srt", "game of thrones memento"},
    {"default", "Dark.S01-S03.MULTi.1080p.NF.WEB-DL.DDP5.1.HDR.HEVC-ELiTE", "dark elite"},
    {"default", "Mare Fuori 3x12 ITA 720p WEBRip H.264 AAC.mkv", "mare fuori"},
    {"default", "Élite.S06E02.iTALiAN.ENG.SUBBED.1080p.NF.WEBMux.x265.DTS-HD.MA.5.1-MIRCrew.mkv",
     "élite mircrew"},
    {"default", "Suburra.La.Serie.S02.COMPLETE.ITA.ENG.1080p.NF.WEB-DLMux.DD5.1.H264-iDN_CreW",
     "suburra la serie idn crew"},
    {"default", "I Griffin 10x05 - Ep.05 [SATRip ITA] by Pir8.avi", "i griffin by pir8"},
    {"default", "24.S01E01.12.00.A.M.-1.00.A.M.DVDRip.XviD-TOPAZ.avi", "24 a m a m topaz"},
    {"default", "L'amica geniale - Stagione 2 - Puntata 3.mp4", "l amica geniale"},
    {"default", "Skam.Italia.s04e10.Sub.Ita.720p.mp4", "skam italia"},
    {"default", "Doc - Nelle tue mani 1x01 2020 ITA 1080i DVB-S2 Rai1.ts", "doc nelle tue mani"},
    {"default", "The_Walking_Dead_S11E24_Rest_in_Peace_1080p_DSNP_WEB-DL_DDP5.1_H.264-NOSiViD.mkv",
     "the walking dead rest in peace nosivid"},
    {"default", "Lost - 1x01 - Pilot (Parte 1).avi", "lost pilot"},
    {"default", "how.i.met.your.mother.s09e24.last.forever.720p.hdtv.x264-dimension.mkv",
     "how i met your mother last forever dimension"},
    {"default", "13 Reasons Why S01E01 Tape 1 Side A 1080p NF WEBRip DD5.1 x264-NTb.mkv",
     "13 reasons why tape side a ntb"},
    {"default",
     "Il Trono di Spade 8x06 Il trono di spade iTALiAN ENGLiSH WEB-DL 1080p Blu-Ray DTS-HD MA.mkv",
     "il trono di spade il trono di spade english"},
    {"default", "CSI: Miami - 10x19 - Habeas Corpse.srt", "csi miami habeas corpse"},
    {"default", "NCIS.Los.Angeles.S14E21.Of.Value.720p.AMZN.WEB-DL.DDP5.1.H.264-NTb.ITA.sub",
     "ncis los angeles of value ntb"},
    {"default",
     "Stranger Things - Stagione 4 Completa [NF WEB-DL 2160p HDR10 Dolby Vision ITA ENG] {by "
     "Morpheus}",
     "stranger things by morpheus"},
    {"default", "Winx Club - Ep 104 - Il ritorno di Valtor.avi", "winx club il ritorno di valtor"},
    {"default", "Detective Conan 1080 SUB ITA 1080p.mp4", "detective conan 1080"},
    {"default", "Un.posto.al.sole.puntata.6421.del.12.03.2024.mp4", "un posto al sole del"},
    {"default",
     "Vikings Valhalla (2022) S03E08 1080p 10bit NF WEBRip x265 HEVC [ITA ENG AC3] MIRCrew",
     "vikings valhalla 2022 mircrew"},
    {"default", "Shōgun.2024.S01E01.Anjin.2160p.DSNP.WEB-DL.DDP5.1.Atmos.DV.HDR.H.265-FLUX.mkv",
     "shōgun 2024 anjin flux"},
    {"default", "Il.Paradiso.Delle.Signore.8x120.(2024-02-05).ITA.WEBRip.mkv",
     "il paradiso delle signore"},
    {"default", "Better.Call.Saul.S06E13.Saul.Gone.REPACK.1080p.AMZN.WEB-DL.DDP5.1.H.264-NTb.mkv",
     "better call saul saul gone ntb"},
    {"default", "1883.S01E01.1883.2160p.PMTP.WEB-DL.DDP5.1.H.265-NTb.mkv", "1883 ntb"},
    {"default", "the.office.s03e01.gay.witch.hunt.proper.hdtv.xvid-xor.avi",
     "the office gay witch hunt xor"},
    {"default", "GOMORRAH.S01E01.720P.HDTV.X264-RIVER.MKV", "gomorrah river"},
    {"default", "Romanzo Criminale - La Serie - 1x01 - Episodio 1 [DVDMux ITA MP3].avi",
     "romanzo criminale la serie"},
    {"default", "Mr. Robot S04E13 Hello, Elliot [1080p x265 10bit Joy].mkv",
     "mr robot hello elliot joy"},
    {"default", "Money Heist Korea - Joint Economic Area S01 COMPLETE 720p NF WEBRip x264-GalaxyTV",
     "money heist korea joint economic area galaxytv"},
    {"separators,lower", "La.Casa.di.Carta.S02E05.ITA.ENG.1080p.WEB-DL.x264.mkv",
     "la casa di carta s02e05 ita eng 1080p web dl x264 mkv"},
    {"separators,lower", "montalbano 2x3.avi", "montalbano 2x3 avi"},
    {"separators,lower",
     "Il.Commissario.Montalbano.S01E01.Il.Ladro.Di.Merendine.ITA.DLMux.x264-UBi.mkv",
     "il commissario montalbano s01e01 il ladro di merendine ita dlmux x264 ubi mkv"},
    {"separators,lower", "Gomorra - La Serie S03E01 [ITA] [1080p] [WEBDL] [H264] by NovaRip.mkv",
     "gomorra la serie s03e01 ita 1080p webdl h264 by novarip mkv"},
    {"separators,lower", "The.100.S03E05.720p.HDTV.x264-KILLERS.mkv",
     "the 100 s03e05 720p hdtv x264 killers mkv"},
    {"separators,lower", "1992.S01E01.ITA.1080p.BluRay.x264-DaSH.mkv",
     "1992 s01e01 ita 1080p bluray x264 dash mkv"},
    {"separators,lower", "Doctor.Who.2005.S10E01.The.Pilot.1080p.AMZN.WEB-DL.DDP5.1.H.264-NTb.mkv",
     "doctor who 2005 s10e01 the pilot 1080p amzn web dl ddp5 1 h 264 ntb mkv"},
    {"separators,lower", "The.Office.US.S02E01.The.Dundies.HDTV.XviD-LOL.[eztv].avi",
     "the office us s02e01 the dundies hdtv xvid lol eztv avi"},
    {"separators,lower", "24.S01E01.12.00.A.M.-1.00.A.M.DVDRip.XviD-TOPAZ.avi",
     "24 s01e01 12 00 a m 1 00 a m dvdrip xvid topaz avi"},
    {"separators,lower", "13 Reasons Why S01E01 Tape 1 Side A 1080p NF WEBRip DD5.1 x264-NTb.mkv",
     "13 reasons why s01e01 tape 1 side a 1080p nf webrip dd5 1 x264 ntb mkv"},
    {"separators,lower", "Un.posto.al.sole.puntata.6421.del.12.03.2024.mp4",
     "un posto al sole puntata 6421 del 12 03 2024 mp4"},
    {"separators,lower,episode", "La.Casa.di.Carta.S02E05.ITA.ENG.1080p.WEB-DL.x264.mkv",
     "la casa di carta ita eng 1080p web dl x264 mkv"},
    {"separators,lower,episode", "montalbano 2x3.avi", "montalbano avi"},
    {"separators,lower,episode",
     "Il.Commissario.Montalbano.S01E01.Il.Ladro.Di.Merendine.ITA.DLMux.x264-UBi.mkv",
     "il commissario montalbano il ladro di merendine ita dlmux x264 ubi mkv"},
    {"separators,lower,episode",
     "Gomorra - La Serie S03E01 [ITA] [1080p] [WEBDL] [H264] by NovaRip.mkv",
     "gomorra la serie ita 1080p webdl h264 by novarip mkv"},
    {"separators,lower,episode", "The.100.S03E05.720p.HDTV.x264-KILLERS.mkv",
     "the 100 720p hdtv x264 killers mkv"},
    {"separators,lower,episode", "1992.S01E01.ITA.1080p.BluRay.x264-DaSH.mkv",
     "1992 ita 1080p bluray x264 dash mkv"},
    {"separators,lower,episode",
     "Doctor.Who.2005.S10E01.The.Pilot.1080p.AMZN.WEB-DL.DDP5.1.H.264-NTb.mkv",
     "doctor who 2005 the pilot 1080p amzn web dl ddp5 h 264 ntb mkv"},
    {"separators,lower,episode", "The.Office.US.S02E01.The.Dundies.HDTV.XviD-LOL.[eztv].avi",
     "the office us the dundies hdtv xvid lol eztv avi"},
    {"separators,lower,episode", "24.S01E01.12.00.A.M.-1.00.A.M.DVDRip.XviD-TOPAZ.avi",
     "24 a m a m dvdrip xvid topaz avi"},
    {"separators,lower,episode",
     "13 Reasons Why S01E01 Tape 1 Side A 1080p NF WEBRip DD5.1 x264-NTb.mkv",
     "13 reasons why tape side a 1080p nf webrip dd5 x264 ntb mkv"},
    {"separators,lower,episode", "Un.posto.al.sole.puntata.6421.del.12.03.2024.mp4",
     "un posto al sole del mp4"},
    {"separators,lower,quality", "La.Casa.di.Carta.S02E05.ITA.ENG.1080p.WEB-DL.x264.mkv",
     "la casa di carta s02e05 mkv"},
    {"separators,lower,quality", "montalbano 2x3.avi", "montalbano 2x3 avi"},
    {"separators,lower,quality",
     "Il.Commissario.Montalbano.S01E01.Il.Ladro.Di.Merendine.ITA.DLMux.x264-UBi.mkv",
     "il commissario montalbano s01e01 il ladro di merendine ubi mkv"},
    {"separators,lower,quality",
     "Gomorra - La Serie S03E01 [ITA] [1080p] [WEBDL] [H264] by NovaRip.mkv",
     "gomorra la serie s03e01 by novarip mkv"},
    {"separators,lower,quality", "The.100.S03E05.720p.HDTV.x264-KILLERS.mkv",
     "the 100 s03e05 killers mkv"},
    {"separators,lower,quality", "1992.S01E01.ITA.1080p.BluRay.x264-DaSH.mkv",
     "1992 s01e01 dash mkv"},
    {"separators,lower,quality",
     "Doctor.Who.2005.S10E01.The.Pilot.1080p.AMZN.WEB-DL.DDP5.1.H.264-NTb.mkv",
     "doctor who 2005 s10e01 the pilot 1 ntb mkv"},
    {"separators,lower,quality", "The.Office.US.S02E01.The.Dundies.HDTV.XviD-LOL.[eztv].avi",
     "the office us s02e01 the dundies lol avi"},
    {"separators,lower,quality", "24.S01E01.12.00.A.M.-1.00.A.M.DVDRip.XviD-TOPAZ.avi",
     "24 s01e01 12 00 a m 1 00 a m topaz avi"},
    {"separators,lower,quality",
     "13 Reasons Why S01E01 Tape 1 Side A 1080p NF WEBRip DD5.1 x264-NTb.mkv",
     "13 reasons why s01e01 tape 1 side a 1 ntb mkv"},
    {"separators,lower,quality", "Un.posto.al.sole.puntata.6421.del.12.03.2024.mp4",
     "un posto al sole puntata 6421 del 12 03 mp4"},
    {"separators,extension", "La.Casa.di.Carta.S02E05.ITA.ENG.1080p.WEB-DL.x264.mkv",
     "La Casa di Carta S02E05 ITA ENG 1080p WEB DL x264"},
    {"separators,extension", "montalbano 2x3.avi", "montalbano 2x3"},
    {"separators,extension",
     "Il.Commissario.Montalbano.S01E01.Il.Ladro.Di.Merendine.ITA.DLMux.x264-UBi.mkv",
     "Il Commissario Montalbano S01E01 Il Ladro Di Merendine ITA DLMux x264 UBi"},
    {"separators,extension",
     "Gomorra - La Serie S03E01 [ITA] [1080p] [WEBDL] [H264] by NovaRip.mkv",
     "Gomorra La Serie S03E01 ITA 1080p WEBDL H264 by NovaRip"},
    {"separators,extension", "The.100.S03E05.720p.HDTV.x264-KILLERS.mkv",
     "The 100 S03E05 720p HDTV x264 KILLERS"},
    {"separators,extension", "1992.S01E01.ITA.1080p.BluRay.x264-DaSH.mkv",
     "1992 S01E01 ITA 1080p BluRay x264 DaSH"},
    {"separators,extension",
     "Doctor.Who.2005.S10E01.The.Pilot.1080p.AMZN.WEB-DL.DDP5.1.H.264-NTb.mkv",
     "Doctor Who 2005 S10E01 The Pilot 1080p AMZN WEB DL DDP5 1 H 264 NTb"},
    {"separators,extension", "The.Office.US.S02E01.The.Dundies.HDTV.XviD-LOL.[eztv].avi",
     "The Office US S02E01 The Dundies HDTV XviD LOL eztv"},
    {"separators,extension", "24.S01E01.12.00.A.M.-1.00.A.M.DVDRip.XviD-TOPAZ.avi",
     "24 S01E01 12 00 A M 1 00 A M DVDRip XviD TOPAZ"},
    {"separators,extension",
     "13 Reasons Why S01E01 Tape 1 Side A 1080p NF WEBRip DD5.1 x264-NTb.mkv",
     "13 Reasons Why S01E01 Tape 1 Side A 1080p NF WEBRip DD5 1 x264 NTb"},
    {"separators,extension", "Un.posto.al.sole.puntata.6421.del.12.03.2024.mp4",
     "Un posto al sole puntata 6421 del 12 03 2024"},
    {"lower,extension", "La.Casa.di.Carta.S02E05.ITA.ENG.1080p.WEB-DL.x264.mkv",
     "la.casa.di.carta.s02e05.ita.eng.1080p.web-dl.x264"},
    {"lower,extension", "montalbano 2x3.avi", "montalbano 2x3"},
    {"lower,extension",
     "Il.Commissario.Montalbano.S01E01.Il.Ladro.Di.Merendine.ITA.DLMux.x264-UBi.mkv",
     "il.commissario.montalbano.s01e01.il.ladro.di.merendine.ita.dlmux.x264-ubi"},
    {"lower,extension", "Gomorra - La Serie S03E01 [ITA] [1080p] [WEBDL] [H264] by NovaRip.mkv",
     "gomorra - la serie s03e01 [ita] [1080p] [webdl] [h264] by novarip"},
    {"lower,extension", "The.100.S03E05.720p.HDTV.x264-KILLERS.mkv",
     "the.100.s03e05.720p.hdtv.x264-killers"},
    {"lower,extension", "1992.S01E01.ITA.1080p.BluRay.x264-DaSH.mkv",
     "1992.s01e01.ita.1080p.bluray.x264-dash"},
    {"lower,extension", "Doctor.Who.2005.S10E01.The.Pilot.1080p.AMZN.WEB-DL.DDP5.1.H.264-NTb.mkv",
     "doctor.who.2005.s10e01.the.pilot.1080p.amzn.web-dl.ddp5.1.h.264-ntb"},
    {"lower,extension", "The.Office.US.S02E01.The.Dundies.HDTV.XviD-LOL.[eztv].avi",
     "the.office.us.s02e01.the.dundies.hdtv.xvid-lol.[eztv]"},
    {"lower,extension", "24.S01E01.12.00.A.M.-1.00.A.M.DVDRip.XviD-TOPAZ.avi",
     "24.s01e01.12.00.a.m.-1.00.a.m.dvdrip.xvid-topaz"},
    {"lower,extension", "13 Reasons Why S01E01 Tape 1 Side A 1080p NF WEBRip DD5.1 x264-NTb.mkv",
     "13 reasons why s01e01 tape 1 side a 1080p nf webrip dd5.1 x264-ntb"},
    {"lower,extension", "Un.posto.al.sole.puntata.6421.del.12.03.2024.mp4",
     "un.posto.al.sole.puntata.6421.del.12.03.2024"},
    {"lower,episode,quality,extension", "La.Casa.di.Carta.S02E05.ITA.ENG.1080p.WEB-DL.x264.mkv",
     "la.casa.di.carta.s02e05.ita.eng.1080p.web-dl.x264"},
    {"lower,episode,quality,extension", "montalbano 2x3.avi", "montalbano"},
    {"lower,episode,quality,extension",
     "Il.Commissario.Montalbano.S01E01.Il.Ladro.Di.Merendine.ITA.DLMux.x264-UBi.mkv",
     "il.commissario.montalbano.s01e01.il.ladro.di.merendine.ita.dlmux.x264-ubi"},
    {"lower,episode,quality,extension",
     "Gomorra - La Serie S03E01 [ITA] [1080p] [WEBDL] [H264] by NovaRip.mkv",
     "gomorra - la serie [ita] [1080p] [webdl] [h264] by novarip"},
    {"lower,episode,quality,extension", "The.100.S03E05.720p.HDTV.x264-KILLERS.mkv",
     "the.100.s03e05.720p.hdtv.x264-killers"},
    {"lower,episode,quality,extension", "1992.S01E01.ITA.1080p.BluRay.x264-DaSH.mkv",
     "1992.s01e01.ita.1080p.bluray.x264-dash"},
    {"lower,episode,quality,extension",
     "Doctor.Who.2005.S10E01.The.Pilot.1080p.AMZN.WEB-DL.DDP5.1.H.264-NTb.mkv",
     "doctor.who.2005.s10e01.the.pilot.1080p.amzn.web-dl.ddp5.1.h.264-ntb"},
    {"lower,episode,quality,extension", "The.Office.US.S02E01.The.Dundies.HDTV.XviD-LOL.[eztv].avi",
     "the.office.us.s02e01.the.dundies.hdtv.xvid-lol.[eztv]"},
    {"lower,episode,quality,extension", "24.S01E01.12.00.A.M.-1.00.A.M.DVDRip.XviD-TOPAZ.avi",
     "24.s01e01.12.00.a.m.-1.00.a.m.dvdrip.xvid-topaz"},
    {"lower,episode,quality,extension",
     "13 Reasons Why S01E01 Tape 1 Side A 1080p NF WEBRip DD5.1 x264-NTb.mkv",
     "13 reasons why tape side a dd5.1 x264-ntb"},
    {"lower,episode,quality,extension", "Un.posto.al.sole.puntata.6421.del.12.03.2024.mp4",
     "un.posto.al.sole.puntata.6421.del.12.03.2024"},
    {"none", "La.Casa.di.Carta.S02E05.ITA.ENG.1080p.WEB-DL.x264.mkv",
     "La.Casa.di.Carta.S02E05.ITA.ENG.1080p.WEB-DL.x264.mkv"},
    {"none", "montalbano 2x3.avi", "montalbano 2x3.avi"},
    {"none", "Il.Commissario.Montalbano.S01E01.Il.Ladro.Di.Merendine.ITA.DLMux.x264-UBi.mkv",
     "Il.Commissario.Montalbano.S01E01.Il.Ladro.Di.Merendine.ITA.DLMux.x264-UBi.mkv"},
    {"none", "Gomorra - La Serie S03E01 [ITA] [1080p] [WEBDL] [H264] by NovaRip.mkv",
     "Gomorra - La Serie S03E01 [ITA] [1080p] [WEBDL] [H264] by NovaRip.mkv"},
    {"none", "The.100.S03E05.720p.HDTV.x264-KILLERS.mkv",
     "The.100.S03E05.720p.HDTV.x264-KILLERS.mkv"},
    {"none", "1992.S01E01.ITA.1080p.BluRay.x264-DaSH.mkv",
     "1992.S01E01.ITA.1080p.BluRay.x264-DaSH.mkv"},
    {"none", "Doctor.Who.2005.S10E01.The.Pilot.1080p.AMZN.WEB-DL.DDP5.1.H.264-NTb.mkv",
     "Doctor.Who.2005.S10E01.The.Pilot.1080p.AMZN.WEB-DL.DDP5.1.H.264-NTb.mkv"},
    {"none", "The.Office.US.S02E01.The.Dundies.HDTV.XviD-LOL.[eztv].avi",
     "The.Office.US.S02E01.The.Dundies.HDTV.XviD-LOL.[eztv].avi"},
    {"none", "24.S01E01.12.00.A.M.-1.00.A.M.DVDRip.XviD-TOPAZ.avi",
     "24.S01E01.12.00.A.M.-1.00.A.M.DVDRip.XviD-TOPAZ.avi"},
    {"none", "13 Reasons Why S01E01 Tape 1 Side A 1080p NF WEBRip DD5.1 x264-NTb.mkv",
     "13 Reasons Why S01E01 Tape 1 Side A 1080p NF WEBRip DD5.1 x264-NTb.mkv"},
    {"none", "Un.posto.al.sole.puntata.6421.del.12.03.2024.mp4",
     "Un.posto.al.sole.puntata.6421.del.12.03.2024.mp4"},
};

static void real_names_give_exact_outputs(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    es_normalizer_t n = spec(cases[i].spec);
    char *got = norm(&n, cases[i].in, strlen(cases[i].in));
    if (strcmp(got, cases[i].want))
      fail_msg("[%s] \"%s\"\n  got  \"%s\"\n  want \"%s\"", cases[i].spec, cases[i].in, got,
               cases[i].want);
    free(got);
  }
}

static void title_numbers_survive_until_the_first_marker(void **state) {
  (void)state;
  es_normalizer_t n = spec("default");
  static const struct {
    const char *in, *want;
  } t[] = {
      {"24.S08E01.720p.HDTV.x264-IMMERSE.mkv", "24 immerse"},
      {"The.100.S01E01.Pilot.2014.1080p.mkv", "the 100 pilot"},
      {"Doctor Who 2005 - 1x01 - Rose.avi", "doctor who 2005 rose"},
      {"Doctor.Who.S01E01.2005.mkv", "doctor who"},
      {"90210 4x03 ITA 2011.avi", "90210"},
      {"Gomorra 2 - 01.mkv", "gomorra 2"},
      {"Don Matteo 13 Ep 5 (2022).mp4", "don matteo 13"},
      {"stagione 2", ""},
      {"Season of the Witch.avi", "season of the witch"},
      {"Lost Season Finale.mkv", "lost season finale"},
      {"Blu Ray Donovan ray.mkv", "donovan ray"},
      {"Ray Donovan S01E01 BluRay.mkv", "ray donovan"},
      {"Chi l'ha visto? 2x4.mp4", "chi l ha visto"},
  };
  for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
    char *got = norm(&n, t[i].in, strlen(t[i].in));
    if (strcmp(got, t[i].want))
      fail_msg("\"%s\": got \"%s\", want \"%s\"", t[i].in, got, t[i].want);
    free(got);
  }
}

static void known_extensions_are_stripped_from_the_end(void **state) {
  (void)state;
  es_normalizer_t n = spec("extension");
  static const struct {
    const char *in, *want;
  } t[] = {
      {"a.mkv", "a"},       {"a.M2TS", "a"},        {"a.mpeg", "a"},        {"a.webm", "a"},
      {"a.rmvb", "a"},      {"a.ts", "a"},          {"x.ita.srt", "x.ita"}, {"x.mkv.mkv", "x"},
      {"x.mkv \t", "x"},    {"x .mkv", "x .mkv"},   {".mkv", ".mkv"},       {"x.mkvv", "x.mkvv"},
      {"x.docx", "x.docx"}, {"x.mkv y", "x.mkv y"}, {"x.", "x."},
  };
  for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
    char *got = norm(&n, t[i].in, strlen(t[i].in));
    if (strcmp(got, t[i].want))
      fail_msg("\"%s\": got \"%s\", want \"%s\"", t[i].in, got, t[i].want);
    free(got);
  }
  n = spec("extension,episode"); /* whitespace tokens: each one is stripped */
  char *got = norm(&n, "x.mkv S01E01.avi y.srt", 22);
  assert_string_equal(got, "x y");
  free(got);
}

static void latin_letters_are_lowered_in_place(void **state) {
  (void)state;
  es_normalizer_t n = spec("lower");
  const char *in =
      "\xc3\x80\xc3\x89\xc3\x8e\xc3\x95\xc3\x9c\xc3\x97\xc3\x9e\xc3\x9f"  /* ÀÉÎÕÜ×Þß */
      " \xc4\x80\xc4\x86\xc4\xb2\xc5\x81\xc5\x83\xc5\xb8\xc5\xbd\xc5\x92" /* ĀĆĲŁŃŸŽŒ */
      " \xc4\xb0STANBUL \xc5\x8d";                                        /* İSTANBUL ō */
  const char *want = "\xc3\xa0\xc3\xa9\xc3\xae\xc3\xb5\xc3\xbc\xc3\x97\xc3\xbe\xc3\x9f"
                     " \xc4\x81\xc4\x87\xc4\xb3\xc5\x82\xc5\x84\xc3\xbf\xc5\xbe\xc5\x93"
                     " \xc4\xb0stanbul \xc5\x8d"; /* U+0130 stays: see normalize.c */
  char *got = norm(&n, in, strlen(in));
  assert_string_equal(got, want);
  free(got);
}

static void specs_round_trip(void **state) {
  (void)state;
  for (unsigned f = 0; f < 32; f++) {
    es_normalizer_t a = {f}, b = {0xdead};
    char buf[64];
    size_t l = es_normalizer_format(&a, buf, sizeof buf);
    assert_int_equal(l, strlen(buf));
    assert_true(l <= 43);
    assert_int_equal(es_normalizer_parse(&b, buf, NULL), 0);
    assert_int_equal(b.flags, f);
  }
  es_normalizer_t n = {ES_NORM_DEFAULT};
  char buf[64];
  es_normalizer_format(&n, buf, sizeof buf);
  assert_string_equal(buf, "separators,lower,extension,episode,quality");
  n.flags = 0;
  es_normalizer_format(&n, buf, sizeof buf);
  assert_string_equal(buf, "none");
  n.flags = ES_NORM_QUALITY | ES_NORM_SEPARATORS;
  es_normalizer_format(&n, buf, sizeof buf);
  assert_string_equal(buf, "separators,quality");
  assert_int_equal(es_normalizer_format(&n, buf, 5), 18); /* truncated like snprintf */
  assert_string_equal(buf, "sepa");
  assert_int_equal(es_normalizer_format(&n, NULL, 0), 18);
  assert_int_equal(spec("default").flags, ES_NORM_DEFAULT);
  assert_int_equal(spec(" lower , separators ").flags, ES_NORM_LOWER | ES_NORM_SEPARATORS);
  assert_int_equal(spec("none").flags, 0);
  assert_int_equal(spec("none,quality").flags, ES_NORM_QUALITY);
}

static void bad_specs_name_the_bad_word(void **state) {
  (void)state;
  static const struct {
    const char *spec, *named;
  } bad[] = {
      {"separators,lowr", "\"lowr\""},
      {"Lower", "\"Lower\""},
      {"separators,,lower", "empty word"},
      {"", "empty word"},
      {"lower,", "empty word"},
      {"all", "\"all\""},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    es_normalizer_t n = {ES_NORM_LOWER};
    es_error_t err = {0};
    assert_int_equal(es_normalizer_parse(&n, bad[i].spec, &err), ES_EINVAL);
    assert_int_equal(err.code, ES_EINVAL);
    assert_non_null(strstr(err.msg, bad[i].named));
    assert_int_equal(n.flags, ES_NORM_LOWER); /* unchanged */
    assert_int_equal(es_normalizer_parse(&n, bad[i].spec, NULL), ES_EINVAL);
  }
  es_normalizer_t n;
  assert_int_equal(es_normalizer_parse(&n, NULL, NULL), ES_EINVAL);
}

static void invalid_utf8_passes_through(void **state) {
  (void)state;
  es_normalizer_t n = spec("default");
  /* lone lead at the end, lead + ASCII, bytes never valid, overlong, lone continuation */
  const char in[] = "Caf\xc3 \xc3( \xff\xfe \xc0\xaf \x80 \xc5 S01E01 \xe2\x82";
  char *got = norm(&n, in, sizeof in - 1);
  assert_string_equal(got, "caf\xc3 \xc3 \xff\xfe \xc0\xaf \x80 \xc5 \xe2\x82");
  free(got);
}

static void nul_bytes_are_ordinary_bytes(void **state) {
  (void)state;
  es_normalizer_t n = spec("default");
  const char in[] = "Dark\0S01E01.ITA\0.1080p.mkv";
  char out[sizeof in];
  size_t r = es_normalize(&n, in, sizeof in - 1, out, sizeof out);
  assert_int_equal(r, 16);
  assert_memory_equal(out, "dark\0s01e01 ita\0", 17); /* tokens with a NUL are not tags */
  n = spec("none");
  r = es_normalize(&n, in, sizeof in - 1, out, sizeof out);
  assert_int_equal(r, sizeof in - 1);
  assert_memory_equal(out, in, sizeof in);
}

static void empty_and_all_dropped_inputs_give_empty_strings(void **state) {
  (void)state;
  char out[8] = "xxxxxxx";
  for (unsigned f = 0; f < 32; f++) {
    es_normalizer_t n = {f};
    assert_int_equal(es_normalize(&n, NULL, 0, out, sizeof out), 0);
    assert_int_equal(out[0], 0);
    assert_int_equal(es_normalize(&n, "", 0, NULL, 0), 0);
  }
  es_normalizer_t n = spec("default");
  const char *gone[] = {" ", "...", "S01E01", "[1080p] - ITA.mkv", ".mkv", "x.mkv"};
  const size_t want[] = {0, 0, 0, 0, 3, 1};
  for (size_t i = 0; i < sizeof gone / sizeof *gone; i++) {
    char *got = norm(&n, gone[i], strlen(gone[i]));
    assert_int_equal(strlen(got), want[i]);
    free(got);
  }
}

/* Random names from pieces that exercise every rule, plus raw bytes. */
static uint64_t rng = 88172645463325252u;
static uint32_t next_rand(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (uint32_t)(rng >> 32);
}
static size_t random_name(char *buf, size_t cap) {
  static const char *const pieces[] = {
      "Dark",     "The",   "100",  "24",       "1992",     "2005",     "s01e02", "S1",     "E05",
      "1x02",     "01",    "007",  "stagione", "Season",   "ep",       "2",      "h",      "x",
      "264",      "265",   "blu",  "ray",      "hd",       "ma",       "dolby",  "vision", "ITA",
      "eng",      "1080p", "WEB",  "DL",       "x264",     "mkv",      "srt",    ".mkv",   ".srt",
      ".",        "-",     "_",    " ",        "  ",       "[",        "]",      "(",      ")",
      ":",        "'",     "\t",   "\xc3\x89", "\xc5\xb8", "\xc4\xb0", "\xc3",   "\x80",   "\xff",
      "abcd1234", "1of6",  "rai3", "5",        "1",        "0"};
  size_t n = 0, parts = next_rand() % 14;
  for (size_t i = 0; i < parts; i++) {
    const char *p = pieces[next_rand() % (sizeof pieces / sizeof *pieces)];
    size_t l = strlen(p);
    if (next_rand() % 16 == 0) p = "\0", l = 1;
    if (n + l >= cap) break;
    memcpy(buf + n, p, l);
    n += l;
  }
  return n;
}

static void output_never_exceeds_input_and_truncates_safely(void **state) {
  (void)state;
  char in[256], full[257], small[257];
  for (int iter = 0; iter < 20000; iter++) {
    size_t len = random_name(in, sizeof in);
    es_normalizer_t n = {next_rand() % 32};
    char *out = norm(&n, in, len); /* checks r <= len and the exact-size buffer */
    free(out);
    size_t r = es_normalize(&n, in, len, full, sizeof full);
    size_t cap = next_rand() % (len + 2);
    memset(small, 0x55, sizeof small);
    size_t r2 = es_normalize(&n, in, len, small, cap);
    assert_int_equal(r2, r);
    if (cap) {
      size_t kept = r < cap - 1 ? r : cap - 1;
      assert_memory_equal(small, full, kept);
      assert_int_equal(small[kept], 0);
      assert_int_equal((unsigned char)small[kept + 1], 0x55); /* nothing past the NUL */
    } else {
      assert_int_equal((unsigned char)small[0], 0x55);
    }
  }
}

static void normalizing_twice_is_normalizing_once(void **state) {
  (void)state;
  char in[256], once[257], twice[257];
  for (unsigned f = 0; f < 32; f++) {
    es_normalizer_t n = {f};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
      size_t r = es_normalize(&n, cases[i].in, strlen(cases[i].in), once, sizeof once);
      size_t r2 = es_normalize(&n, once, r, twice, sizeof twice);
      if (r2 != r || memcmp(once, twice, r))
        fail_msg("flags %u: \"%s\" -> \"%s\" -> \"%s\"", f, cases[i].in, once, twice);
    }
  }
  for (int iter = 0; iter < 50000; iter++) {
    size_t len = random_name(in, sizeof in);
    es_normalizer_t n = {next_rand() % 32};
    size_t r = es_normalize(&n, in, len, once, sizeof once);
    size_t r2 = es_normalize(&n, once, r, twice, sizeof twice);
    if (r2 != r || memcmp(once, twice, r))
      fail_msg("flags %u: \"%.*s\" -> \"%s\" -> \"%s\"", n.flags, (int)len, in, once, twice);
  }
}

static void unknown_flag_bits_are_ignored(void **state) {
  (void)state;
  es_normalizer_t a = {ES_NORM_DEFAULT}, b = {ES_NORM_DEFAULT | 0xffffffe0u};
  const char *in = "Breaking.Bad.S05E14.Ozymandias.720p.mkv";
  char x[64], y[64];
  es_normalize(&a, in, strlen(in), x, sizeof x);
  es_normalize(&b, in, strlen(in), y, sizeof y);
  assert_string_equal(x, y);
  assert_string_equal(x, "breaking bad ozymandias");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(real_names_give_exact_outputs),
      cmocka_unit_test(title_numbers_survive_until_the_first_marker),
      cmocka_unit_test(known_extensions_are_stripped_from_the_end),
      cmocka_unit_test(latin_letters_are_lowered_in_place),
      cmocka_unit_test(specs_round_trip),
      cmocka_unit_test(bad_specs_name_the_bad_word),
      cmocka_unit_test(invalid_utf8_passes_through),
      cmocka_unit_test(nul_bytes_are_ordinary_bytes),
      cmocka_unit_test(empty_and_all_dropped_inputs_give_empty_strings),
      cmocka_unit_test(output_never_exceeds_input_and_truncates_safely),
      cmocka_unit_test(normalizing_twice_is_normalizing_once),
      cmocka_unit_test(unknown_flag_bits_are_ignored),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
